package pebblestate

import "github.com/cockroachdb/pebble/v2"

// EntriesOutsideRange counts the DB's entries of key groups outside the
// backend's range (after a rescale they must have been deleted).
func EntriesOutsideRange[K comparable](b *Backend[K]) int {

	it, err := b.db.NewIter(&pebble.IterOptions{UpperBound: metaPrefix})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		kg := int(k[0])<<8 | int(k[1])
		if !b.r.Contains(kg) {
			n++
		}
	}
	return n
}
