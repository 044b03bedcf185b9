package codec_test

import (
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// A key of a named type needs no codec of its own: KeyFor (which KeyBy and
// the state registrations use) finds the codec of its underlying type.
func ExampleKeyFor() {
	type UserID string
	kc, ok := codec.KeyFor[UserID]()
	enc := kc.Append(nil, "alice")
	back, _, _ := kc.Decode(enc)
	fmt.Println(ok, back, codec.IDOf[UserID](kc))
	fmt.Println("same key group as a string:", kc.Hash("alice") == codec.String.Hash("alice"))
	// Output:
	// true alice string@v1
	// same key group as a string: true
}

// IntOf is the codec of any signed integer type, checked at compile time
// by its ~ constraint.
func ExampleIntOf() {
	type Shard int16
	c := codec.IntOf[Shard]()
	v, n, err := c.Decode(c.Append(nil, -7))
	fmt.Println(v, n, err)
	_, _, err = c.Decode(codec.Int64.Append(nil, 1<<20))
	fmt.Println(err)
	// Output:
	// -7 1 <nil>
	// codec: corrupt input: value out of int range
}

// Struct composes a binary codec for a struct from codecs of its fields; its
// ID records the layout, so a restore of state written with another layout
// names both instead of misreading bytes.
func ExampleStruct() {
	type Session struct {
		User   string
		Clicks int64
		Pages  []string
	}
	c, err := codec.Struct("session",
		codec.FieldOf("user", func(s *Session) *string { return &s.User }, codec.String),
		codec.FieldOf("clicks", func(s *Session) *int64 { return &s.Clicks }, codec.Int64),
		codec.FieldOf("pages", func(s *Session) *[]string { return &s.Pages }, codec.List(codec.String)),
	)
	if err != nil {
		panic(err)
	}
	enc := c.Append(nil, Session{User: "u1", Clicks: 3, Pages: []string{"/", "/cart"}})
	s, _, _ := c.Decode(enc)
	fmt.Printf("%d bytes: %+v\n", len(enc), s)
	fmt.Println(codec.IDOf(c))
	// Output:
	// 13 bytes: {User:u1 Clicks:3 Pages:[/ /cart]}
	// struct session{user:string@v1,clicks:zigzag-varint@v1,pages:list(string@v1)@v1}@v1
}

// JSON serves as a state codec (length-prefixed) and as a record format
// (kafka.FormatDeserializer, kafka.FormatSerializer).
func ExampleJSON() {
	type Order struct {
		ID     string  `json:"id"`
		Amount float64 `json:"amount"`
	}
	c := codec.JSON[Order]()
	rec, _ := c.Marshal(nil, Order{ID: "o-1", Amount: 9.5}) // a record value
	fmt.Println(string(rec))
	o, _ := c.Unmarshal(rec)
	enc := c.Append(nil, o) // a state entry
	back, _, _ := c.Decode(enc)
	fmt.Println(back.ID, back.Amount, codec.IDOf[Order](c))
	// Output:
	// {"id":"o-1","amount":9.5}
	// o-1 9.5 json@v1
}
