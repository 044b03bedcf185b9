package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/internal/kafkacount"
)

// TestCompareFlags: missing topics, green = blue and bad numbers are usage
// errors naming the flag.
func TestCompareFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", "--brokers", "b", "--blue", "x"}, "--green are required"},
		{[]string{"compare", "--brokers", "b", "--blue", "x", "--green", "x"}, "--green: must differ from --blue"},
		{[]string{"compare", "--brokers", "b", "--blue", "x", "--green", "y", "--min-overlap", "-1"}, "--min-overlap"},
		{[]string{"compare", "--brokers", "b", "--blue", "x", "--green", "y", "--wait", "-1s"}, "--wait"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"compare", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-min-overlap") {
		t.Errorf("compare --help: exit %d, stdout:\n%s", code, out.String())
	}
}

// TestCompareTopics runs `sluice compare` on topics of the embedded broker:
// green restored from blue's savepoint agrees; green that lost a record,
// doubled one, or started without blue's state does not (the last only
// with --complete), nor does a too small overlap.
func TestCompareTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Ephemeral: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := b.Addrs()
	topics := []string{"blue", "green", "lost", "doubled", "stateless"}
	if err := kafkacount.EnsureTopics(ctx, brokers, 3, topics...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	put := func(topic, key string, n int) {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(strconv.Itoa(n))}, nil)
	}
	// Blue counted 10 keys to 20; the savepoint was at 5 + key index.
	for k := range 10 {
		key := "k" + strconv.Itoa(k)
		for n := 1; n <= 20; n++ {
			put("blue", key, n)
			if n > 5+k {
				put("green", key, n)
				if !(k == 3 && n == 12) {
					put("lost", key, n)
				}
				put("doubled", key, n)
				if k == 7 && n == 16 {
					put("doubled", key, n)
				}
			}
			if n <= 20-(5+k) {
				put("stateless", key, n)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		green string
		extra []string
		code  int
		want  string
	}{
		{"green", []string{"--complete"}, 0, `"compared":105,`},
		{"green", []string{"--min-overlap", "106"}, 1, "only 105 of green's records compared"},
		{"lost", nil, 1, `key \"k3\": green's output \"13\" where blue's is \"12\"`},
		{"doubled", nil, 1, `key \"k7\": green's output \"16\" where blue's is \"17\"`},
		{"stateless", nil, 0, `"blue_ahead":95`},
		{"stateless", []string{"--complete"}, 1, "do not end together"},
	} {
		args := append([]string{"compare", "--brokers", strings.Join(brokers, ","), "--blue", "blue", "--green", tc.green}, tc.extra...)
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d and %q; output:\n%s%s", args[5:], code, tc.code, tc.want, out.String(), errb.String())
		}
	}
}
