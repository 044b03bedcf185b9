package avrocodec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/codec/avrocodec"
)

type order struct {
	ID     string  `avro:"id"`
	Amount float64 `avro:"amount"`
}

const schema = `{"type": "record", "name": "Order", "fields": [
	{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}`

func TestRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	if _, err := avrocodec.New[order](`{"type": "record"`); err == nil {
		t.Fatal("broken schema accepted")
	}
	c, err := avrocodec.New[order](schema)
	if err != nil {
		t.Fatal(err)
	}
	enc := c.Append(nil, order{ID: "o-1", Amount: 2.5})
	got, n, err := c.Decode(enc)
	if err != nil || n != len(enc) || got != (order{ID: "o-1", Amount: 2.5}) {
		t.Fatalf("round trip: %+v, %d, %v", got, n, err)
	}
	rec, _ := c.Marshal(nil, got)
	if _, err := c.Unmarshal(rec[:len(rec)-1]); err == nil {
		t.Errorf("truncated: %v", err)
	}
	if _, err := c.Unmarshal(append(rec, 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing: %v", err)
	}
	if _, _, err := c.Decode(codec.Bytes.Append(nil, rec[:3])); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("framed truncated: %v", err)
	}
	// Any schema change is another ID.
	c2, err := avrocodec.New[order](strings.Replace(schema, `"double"`, `"float"`, 1))
	if err != nil {
		t.Fatal(err)
	}
	if c2.CodecID() == c.CodecID() || !strings.HasPrefix(c.CodecID().Name, "avro ") {
		t.Errorf("IDs %s, %s", c.CodecID(), c2.CodecID())
	}
}

func Example() {
	c, err := avrocodec.New[order](schema)
	if err != nil {
		panic(err)
	}
	rec, _ := c.Marshal(nil, order{ID: "o-1", Amount: 2.5}) // a record value
	o, _ := c.Unmarshal(rec)
	fmt.Printf("%d bytes: %+v\n", len(rec), o)
	// Output: 12 bytes: {ID:o-1 Amount:2.5}
}

type orderV2 struct {
	ID       string  `avro:"id"`
	Amount   float64 `avro:"amount"`
	Currency string  `avro:"currency"`
}

const schemaV2 = `{"type": "record", "name": "Order", "fields": [
	{"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
	{"name": "currency", "type": "string", "default": "EUR"}]}`

// State written with an old schema migrates through Avro schema
// resolution; a schema not declared with ReadsOld, or one that cannot be
// resolved, is incompatible.
func TestReadsOldSchema(t *testing.T) {
	t.Parallel()
	v1, _ := avrocodec.New[order](schema)
	v2, err := avrocodec.New[orderV2](schemaV2, avrocodec.ReadsOld(schema))
	if err != nil {
		t.Fatal(err)
	}
	comp, read := codec.Resolve[orderV2](v2, v1.CodecID())
	if comp != codec.CompatibleAfterMigration {
		t.Fatalf("resolve: %v", comp)
	}
	enc := v1.Append(nil, order{ID: "o-1", Amount: 2.5})
	got, n, err := read(enc)
	if err != nil || n != len(enc) || got != (orderV2{ID: "o-1", Amount: 2.5, Currency: "EUR"}) {
		t.Fatalf("migrated %+v, %d, %v", got, n, err)
	}
	plain, _ := avrocodec.New[orderV2](schemaV2)
	if comp, _ := codec.Resolve[orderV2](plain, v1.CodecID()); comp != codec.Incompatible {
		t.Fatalf("without ReadsOld: %v", comp)
	}
	if _, err := avrocodec.New[orderV2](schemaV2, avrocodec.ReadsOld(`{"type": "string"}`)); err == nil {
		t.Fatal("an old schema that cannot be resolved was accepted")
	}
}
