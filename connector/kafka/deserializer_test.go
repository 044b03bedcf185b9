package kafka_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestDeserializerBytesStringRecords(t *testing.T) {
	t.Parallel()
	ts := time.UnixMilli(1714564800123)
	rec := &kgo.Record{Topic: "t", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v\xff"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("1")}}, Timestamp: ts}
	if b, err := kafka.Bytes().Deserialize(rec); err != nil || !bytes.Equal(b, rec.Value) {
		t.Errorf("Bytes: %q %v", b, err)
	}
	if b, err := kafka.Bytes().Deserialize(&kgo.Record{}); err != nil || b != nil {
		t.Errorf("Bytes of a tombstone: %q %v", b, err)
	}
	if s, err := kafka.String().Deserialize(rec); err != nil || s != "v\xff" {
		t.Errorf("String: %q %v", s, err)
	}
	r, err := kafka.Records().Deserialize(rec)
	if err != nil || r.Topic != "t" || r.Partition != 3 || r.Offset != 42 || string(r.Key) != "k" ||
		string(r.Value) != "v\xff" || len(r.Headers) != 1 || !r.Timestamp.Equal(ts) {
		t.Errorf("Records: %+v %v", r, err)
	}
	f := kafka.DeserializerFunc[int](func(r *kgo.Record) (int, error) { return len(r.Value), nil })
	if n, err := f.Deserialize(rec); n != 2 || err != nil {
		t.Errorf("DeserializerFunc: %d %v", n, err)
	}
}

type srcOrder struct {
	ID     string  `json:"id" avro:"id"`
	Amount float64 `json:"amount" avro:"amount"`
	Items  []int64 `json:"items" avro:"items"`
}

func TestDeserializerJSON(t *testing.T) {
	t.Parallel()
	d := kafka.JSON[srcOrder]()
	o, err := d.Deserialize(&kgo.Record{Value: []byte(`{"id":"a1","amount":9.5,"items":[1,2]}`)})
	if err != nil || o.ID != "a1" || o.Amount != 9.5 || len(o.Items) != 2 {
		t.Fatalf("%+v %v", o, err)
	}
	for name, v := range map[string][]byte{
		"null value": nil,
		"truncated":  []byte(`{"id":"a1"`),
		"wrong type": []byte(`{"id":5}`),
		"trailing":   []byte(`{"id":"a"} x`),
		"not json":   []byte("\x00\x01"),
	} {
		if o, err := d.Deserialize(&kgo.Record{Value: v}); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, o)
		}
	}
}

func TestDeserializerProtobuf(t *testing.T) {
	t.Parallel()
	d := kafka.Protobuf(func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) })
	b, err := proto.Marshal(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Deserialize(&kgo.Record{Value: b})
	if err != nil || m.GetValue() != "hello" {
		t.Fatalf("%v %v", m, err)
	}
	// Every call returns a fresh message.
	m2, _ := d.Deserialize(&kgo.Record{Value: b})
	if m == m2 {
		t.Error("the same message was returned twice")
	}
	if m, err := d.Deserialize(&kgo.Record{}); err != nil || m.GetValue() != "" {
		t.Errorf("empty value: %v %v", m, err)
	}
	// Field 1 as a length-delimited string claiming 10 bytes with 2 left.
	if _, err := d.Deserialize(&kgo.Record{Value: []byte{0x0a, 0x0a, 'h', 'i'}}); err == nil || !strings.Contains(err.Error(), "google.protobuf.StringValue") {
		t.Errorf("truncated: %v", err)
	}

	sd := kafka.Protobuf(func() *structpb.Struct { return new(structpb.Struct) })
	in, err := structpb.NewStruct(map[string]any{"id": "a1", "n": 3.0, "tags": []any{"x", true}})
	if err != nil {
		t.Fatal(err)
	}
	b, err = proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sd.Deserialize(&kgo.Record{Value: b})
	if err != nil || !proto.Equal(in, out) {
		t.Fatalf("struct round trip: %v %v", out, err)
	}
	if _, err := sd.Deserialize(&kgo.Record{Value: []byte{0xff, 0xff, 0xff}}); err == nil {
		t.Error("garbage decoded")
	}
}

const srcOrderSchema = `{
	"type": "record", "name": "Order",
	"fields": [
		{"name": "id", "type": "string"},
		{"name": "amount", "type": "double"},
		{"name": "items", "type": {"type": "array", "items": "long"}}
	]
}`

func TestDeserializerAvro(t *testing.T) {
	t.Parallel()
	if _, err := kafka.Avro[srcOrder](`{"type": "record"`); err == nil {
		t.Fatal("a broken schema was accepted")
	}
	d, err := kafka.Avro[srcOrder](srcOrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	want := srcOrder{ID: "a1", Amount: 9.5, Items: []int64{1, -2, 1 << 40}}
	b, err := avro.Marshal(avro.MustParse(srcOrderSchema), want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Deserialize(&kgo.Record{Value: b})
	if err != nil || got.ID != want.ID || got.Amount != want.Amount || len(got.Items) != 3 || got.Items[2] != 1<<40 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// Into a map, concurrently (the deserializer is shared by subtasks).
	md, err := kafka.Avro[map[string]any](srcOrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 100 {
				m, err := md.Deserialize(&kgo.Record{Value: b})
				if err == nil && m["id"] != "a1" {
					err = errors.New("wrong value")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range map[string][]byte{
		"null value":     nil,
		"empty":          {},
		"truncated":      b[:len(b)-3],
		"trailing bytes": append(append([]byte(nil), b...), 0x02),
		"bad length":     {0x7f},
	} {
		if o, err := d.Deserialize(&kgo.Record{Value: v}); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, o)
		}
	}
}
