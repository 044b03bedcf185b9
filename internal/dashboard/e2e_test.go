package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/dashboard"
	"github.com/sluicehq/sluice/internal/httpapi"
	"github.com/sluicehq/sluice/watermark"
)

// gatedSink is a sink that lets a record through only for a token: the
// test sets its speed, so that the tasks upstream of it are backpressured
// whatever the machine's speed (the source can read far faster than the
// tokens come).
type gatedSink struct {
	tokens chan struct{}
	once   sync.Once
	quit   chan struct{}
	done   chan struct{}
}

func newGatedSink(perTick int, tick time.Duration) *gatedSink {
	g := &gatedSink{tokens: make(chan struct{}, perTick), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-g.quit:
				return
			case <-t.C:
				for range perTick {
					select {
					case g.tokens <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return g
}

// open lets every record through from now on.
func (g *gatedSink) open() {
	g.once.Do(func() {
		close(g.quit)
		<-g.done
		close(g.tokens)
	})
}

func (g *gatedSink) sink() sluice.SinkFunc[countjob.Count] {
	return func(countjob.Count) error {
		<-g.tokens
		return nil
	}
}

// feeder produces keyed records to the topic at a steady rate until
// stopped: the consumer lag per partition has something to show.
type feeder struct {
	cl   *kgo.Client
	quit chan struct{}
	done chan struct{}
	once sync.Once
	n    int
}

func startFeeder(t *testing.T, c *kfake.Cluster, topic string, backlog, perTick int, tick time.Duration) *feeder {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{cl: cl, quit: make(chan struct{}), done: make(chan struct{})}
	produce := func(n int) error {
		for range n {
			f.n++
			f.cl.Produce(context.Background(), &kgo.Record{Key: []byte("k" + strconv.Itoa(f.n%50)), Value: []byte(strconv.Itoa(f.n))}, nil)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return f.cl.Flush(ctx)
	}
	if err := produce(backlog); err != nil {
		t.Fatalf("produce the backlog: %v", err)
	}
	go func() {
		defer close(f.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		// Bounded: two minutes at most, whatever the test does.
		deadline := time.After(2 * time.Minute)
		for {
			select {
			case <-f.quit:
				return
			case <-deadline:
				return
			case <-tk.C:
				if produce(perTick) != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *feeder) stop() {
	f.once.Do(func() {
		close(f.quit)
		<-f.done
		f.cl.Close()
	})
}

// TestDashboardEndToEnd runs a real job (Kafka source → keyed count → a
// sink slowed down by the test) with the real control API and dashboard,
// and drives the page in headless Chromium: real numbers appear and
// change, the tasks upstream of the slow sink turn HIGH, the consumer lag
// of both partitions is drawn, a savepoint triggered by the button (after
// the page asks for the bearer token) shows up in the checkpoint history
// with its per-subtask detail, and the stop button stops the job with a
// savepoint. Screenshots go to $SLUICE_ARTIFACTS/dashboard.
func TestDashboardEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	b := newBrowser(t)
	const topic = "orders"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	feed := startFeeder(t, cluster, topic, 2000, 60, 50*time.Millisecond) // about 1200 records/s
	gate := newGatedSink(10, 20*time.Millisecond)                         // 500 records/s
	t.Cleanup(gate.open)

	src, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{
		Brokers: cluster.ListenAddrs(), Topics: []string{topic}, Deserializer: kafka.Records(),
		// Small polls: a source blocked by backpressure in the middle of a
		// poll's records takes the barrier only after it.
		MaxPollRecords:    64,
		DiscoveryInterval: time.Second, RetryBackoff: 20 * time.Millisecond, RetryTimeout: 10 * time.Second,
		ClientOpts: []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.FetchMaxWait(100 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := sluice.New(sluice.Config{
		JobName: "dashboard-e2e", Parallelism: 2,
		// Small batches and queues: a barrier passes the slow sink's queue
		// quickly, so checkpoints and the savepoint complete.
		BatchSize: 16, ChannelCapacity: 1, BufferTimeout: 20 * time.Millisecond,
		Checkpoint:    checkpoint.Config{Interval: time.Second},
		CheckpointDir: dir + "/checkpoints", SavepointDir: dir + "/savepoints",
	})
	in := sluice.FromSourceWithWatermarks(env, "orders", src, watermark.ForBoundedOutOfOrderness(time.Second), nil)
	counts := sluice.Process(sluice.KeyBy(in, func(r kafka.Record) string { return string(r.Key) }), "count", countjob.NewCounter[kafka.Record])
	sluice.Sink(sluice.Rebalance(counts, "spread"), "slow-sink", gate.sink())

	const token = "e2e-token"
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	dashboard.Mount(srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srv.Add(env, "dashboard-e2e")
	runCtx, hardCancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(runCtx)
		done <- err
	}()
	t.Cleanup(func() {
		hardCancel()
		gate.open()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the job did not end")
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})

	// On failure, what the page was reading.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, route := range []string{"", "/checkpoints", "/exceptions"} {
			resp, err := http.Get("http://" + srv.Addr() + "/api/v1/jobs/" + env.JobID() + route)
			if err != nil {
				t.Logf("GET %s: %v", route, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("GET /api/v1/jobs/{id}%s: %d %s", route, resp.StatusCode, body)
		}
	})
	url := "http://" + srv.Addr() + "/"
	b.do("open "+url, chromedp.Navigate(url))
	b.waitFor("the job graph", `document.querySelectorAll("#graph-svg g.vertex").length >= 3 && document.getElementById("job-status").textContent === "RUNNING"`, 30*time.Second)
	vertex := func(name string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#graph-svg g.vertex")].find(g => g.dataset.name === %q)`, name)
	}
	row := func(name string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#tasks-table tbody tr")].find(tr => tr.cells[0].textContent === %q)`, name)
	}
	for _, n := range []string{"orders", "count", "spread"} {
		if !eval[bool](b, "!!"+vertex(n)) {
			t.Fatalf("no vertex %q in the graph; vertices: %v", n, eval[[]string](b, `[...document.querySelectorAll("#graph-svg g.vertex")].map(g => g.dataset.name)`))
		}
	}

	// Real numbers appear and change.
	b.waitFor("records counted at the sink", row("spread")+`.querySelector("[data-field=in-total]").textContent.replace(/,/g, "") > 0`, 30*time.Second)
	before := eval[string](b, row("spread")+`.querySelector("[data-field=in-total]").textContent`)
	b.waitFor("the sink's count to move", row("spread")+fmt.Sprintf(`.querySelector("[data-field=in-total]").textContent !== %q`, before), 30*time.Second)
	b.waitFor("a rate in records/s", `Number(`+vertex("spread")+`.dataset.inRate) > 0`, 30*time.Second)

	// The slow sink backpressures its upstream: HIGH, coloured so.
	b.waitFor("the source to turn HIGH", vertex("orders")+`.dataset.level === "HIGH"`, 60*time.Second)
	if got := eval[string](b, `getComputedStyle(`+vertex("orders")+`.querySelector("rect.box")).stroke`); got != "rgb(200, 49, 47)" {
		t.Errorf("a HIGH box is drawn with stroke %s, want the HIGH red", got)
	}
	if got := eval[string](b, row("orders")+`.querySelector("[data-field=level]").textContent`); got != "HIGH" {
		t.Errorf("tasks table says %s for the source", got)
	}

	b.waitFor("a completed checkpoint", `!!document.querySelector("#checkpoint-table tr[data-status=completed]") && document.querySelectorAll("#checkpoint-chart rect.bar").length > 0`, 30*time.Second)
	// The records carry the time they were produced: the watermark is
	// minutes from now at most (it trails by the backlog the slow sink
	// leaves; a wrong unit would put it years away).
	b.waitFor("a watermark", row("count")+`.querySelector("[data-field=watermark]").textContent !== "–"`, 30*time.Second)
	if d := eval[float64](b, `Math.abs(Date.now() - Number(`+row("count")+`.querySelector("[data-field=watermark]").dataset.ms))`); d > 10*60*1000 {
		t.Errorf("the count task's watermark is %.0f ms from now (%s)", d, eval[string](b, row("count")+`.querySelector("[data-field=watermark]").textContent`))
	}
	b.screenshot("01-running-backpressure-high")

	// A savepoint by the button: the API wants the token, the page asks.
	b.do("click savepoint", chromedp.Click(chromedp.CSS("#btn-savepoint")))
	b.waitFor("the token form", `!document.getElementById("token-form").hidden`, 10*time.Second)
	b.do("give the token", chromedp.SendKeys(chromedp.CSS("#token-input"), token), chromedp.Click(chromedp.CSS("#token-submit")))
	b.waitFor("the savepoint's answer", `document.getElementById("action-result").dataset.state === "done"`, 60*time.Second)
	path := eval[string](b, `document.getElementById("action-result").dataset.path`)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the page says the savepoint is %q: %v", path, err)
	}
	b.waitFor("the savepoint in the history", `!!document.querySelector("#checkpoint-table tr[data-kind=savepoint][data-status=completed]") && !!document.querySelector("#checkpoint-chart rect.bar[data-kind=savepoint]")`, 30*time.Second)
	b.do("click the savepoint's row", chromedp.Click(chromedp.CSS(`#checkpoint-table tr[data-kind=savepoint]`)))
	// Every subtask acked: orders, count and spread/slow-sink, two each.
	b.waitFor("the savepoint's per-subtask detail", `document.querySelectorAll("#checkpoint-detail-table tbody tr[data-subtask]").length >= 6`, 30*time.Second)
	b.screenshot("02-savepoint")

	// Consumer lag per partition, drawn over time.
	b.waitFor("a lag line per partition", `[...document.querySelectorAll("#lag-chart polyline")].filter(p => p.points.numberOfItems >= 3).length === 2`, 30*time.Second)
	b.waitFor("a positive lag", `[...document.querySelectorAll("#lag-table tbody tr")].some(tr => Number(tr.dataset.lag) > 0)`, 30*time.Second)
	b.screenshot("03-lag")

	// Stop with a savepoint: two clicks. The sink is let go first, so the
	// final savepoint does not wait behind it.
	feed.stop()
	gate.open()
	b.do("click stop twice", chromedp.Click(chromedp.CSS("#btn-stop")), chromedp.Click(chromedp.CSS("#btn-stop")))
	b.waitFor("the stop's answer", `document.getElementById("action-result").dataset.state === "done"`, 60*time.Second)
	stopPath := eval[string](b, `document.getElementById("action-result").dataset.path`)
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("the job ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not end after the stop")
	}
	if got := srv.StoppedWith(env.JobID()); got == "" || got != stopPath {
		t.Errorf("the server says the job stopped with %q, the page %q", got, stopPath)
	}
	srv.SetStatus(env.JobID(), httpapi.StatusFinished)
	b.waitFor("the job FINISHED, its buttons off", `document.getElementById("job-status").textContent === "FINISHED" && document.getElementById("btn-savepoint").disabled && document.getElementById("btn-stop").disabled`, 10*time.Second)
	b.screenshot("04-stopped")
}
