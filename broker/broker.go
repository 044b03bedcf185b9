// Package broker runs an embedded Kafka-compatible broker: franz-go's kfake
// (github.com/twmb/franz-go/pkg/kfake) served on a TCP port, with its data
// directory persistence and transactions (docs/design.md §7).
//
// Any Kafka client can use it (franz-go, librdkafka/kcat, the Java client),
// which is what lets a local Sluice job run with zero setup. It is one
// in-process node: no replication, and one goroutine serves every request.
// docs/broker.md lists its limits and how it differs from Apache Kafka.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker is a running embedded broker. Its methods are safe for concurrent
// use.
type Broker struct {
	cfg     Config
	cluster *kfake.Cluster
	log     *kfakeLogger
	lock    *dirLock
	// addrs is read once at start: kfake answers ListenAddrs through its
	// request loop, which no longer runs after Close.
	addrs []string

	// persisted holds the names of topics known to be in topics.json;
	// see persistAutoCreatedTopics.
	persisted sync.Map

	closeOnce sync.Once
	closeErr  error
}

// Start validates cfg, fills in defaults, loads the data directory (unless
// Ephemeral) and starts serving. ctx bounds the start only; the broker
// serves until Close.
//
// A persistent broker locks its data directory, so a second broker on the
// same directory fails to start instead of corrupting the first one's log.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}

	b := &Broker{
		cfg: cfg,
		log: &kfakeLogger{l: cfg.Logger},
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			// kfake always asks for 127.0.0.1:<port>; keep the port,
			// use our host.
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(cfg.Host, port))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.DefaultPartitions),
		// Options win over what the data directory persisted, so a
		// changed flag takes effect on restart.
		kfake.BrokerConfigs(map[string]string{
			"transaction.max.timeout.ms": strconv.FormatInt(cfg.TxnMaxTimeout.Milliseconds(), 10),
		}),
		kfake.WithLogger(b.log),
	}
	if !cfg.Ephemeral {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("broker: create data dir: %w", err)
		}
		lock, err := lockDir(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("broker: lock data dir %s: %w", cfg.DataDir, err)
		}
		b.lock = lock
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}

	start := time.Now()
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		b.lock.release()
		return nil, fmt.Errorf("broker: start on %s: %w", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), err)
	}
	b.cluster = cluster
	if !cfg.Ephemeral {
		// First thing: kfake already accepts connections, and a
		// topic auto-created before this is not persisted until the
		// next clean Close (a window of microseconds).
		b.persistAutoCreatedTopics()
	}
	b.addrs = cluster.ListenAddrs()
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("broker: start: %w", err), b.Close())
	}

	cfg.Logger.Info("broker started",
		"addrs", b.addrs,
		"data_dir", b.dataDirForLog(),
		"partitions", cfg.DefaultPartitions,
		"txn_max_timeout", cfg.TxnMaxTimeout,
		"sync_writes", cfg.SyncWrites && !cfg.Ephemeral,
		"startup", time.Since(start))
	return b, nil
}

// Addrs returns the addresses clients bootstrap from, as host:port, e.g.
// "127.0.0.1:9092". There is one: the broker is a single node.
func (b *Broker) Addrs() []string { return slices.Clone(b.addrs) }

// Cluster returns the underlying kfake cluster, for fault injection in
// tests (Control, ControlKey, Fault, ...). Its methods that go through the
// request loop, such as ListenAddrs, block forever once the broker is
// closed.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops serving, disconnects every client and, for a persistent
// broker, writes the state the data directory needs to restart (topics,
// groups, producer IDs, sequence windows) and releases its lock. An open
// transaction survives a clean Close and can still be committed or aborted
// after a restart; after a crash it is aborted on load instead.
//
// Close is idempotent; later calls return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.log.beginClose()
		b.cluster.Close()
		var errs []error
		for _, e := range b.log.endClose() {
			errs = append(errs, fmt.Errorf("broker: close: persist %s: %w", b.cfg.DataDir, e))
		}
		if err := b.lock.release(); err != nil {
			errs = append(errs, fmt.Errorf("broker: close: unlock %s: %w", b.cfg.DataDir, err))
		}
		b.closeErr = errors.Join(errs...)
		b.cfg.Logger.Info("broker closed", "addrs", b.addrs, "data_dir", b.dataDirForLog(), "err", b.closeErr)
	})
	return b.closeErr
}

// persistAutoCreatedTopics works around a kfake gap: a topic that a
// metadata request auto-creates is not written to topics.json (only
// CreateTopics, CreatePartitions, DeleteTopics and config changes write
// it), and a clean Close is the next time it is saved. After a crash the
// topic is gone on restart, its records with it, and when a producer
// auto-creates it again the new partitions append to the orphaned segment
// files, so fetches return stale records. Found by TestCrashAbortsOpenTxn.
//
// So before kfake handles a metadata request that may auto-create topics,
// we create the topics it names through Cluster.CreateTopic, which runs the
// CreateTopics code path and persists topics.json. The control function
// runs on kfake's request loop and CreateTopic needs that loop, so we
// create from SleepControl's wakeup, which runs while the loop is free.
// Topics known to exist skip all this; a DeleteTopics request forgets them
// all. kfake's own auto-creation stays on as the fallback (e.g. for a name
// CreateTopic rejects), so at worst we are back to kfake's behaviour.
func (b *Broker) persistAutoCreatedTopics() {
	c := b.cluster
	b.observe(kmsg.Metadata, func(kreq kmsg.Request) {
		req, ok := kreq.(*kmsg.MetadataRequest)
		if !ok || !req.AllowAutoTopicCreation {
			return
		}
		var missing []string
		for _, rt := range req.Topics {
			if rt.Topic == nil || *rt.Topic == "" || rt.TopicID != [16]byte{} {
				continue
			}
			if _, ok := b.persisted.Load(*rt.Topic); !ok {
				missing = append(missing, *rt.Topic)
			}
		}
		if len(missing) == 0 {
			return
		}
		c.SleepControl(func() {
			for _, t := range missing {
				err := c.CreateTopic(t, -1, nil)
				switch {
				case err == nil:
					b.cfg.Logger.Debug("broker: auto-created topic", "topic", t, "partitions", b.cfg.DefaultPartitions)
					b.persisted.Store(t, struct{}{})
				case errors.Is(err, kerr.TopicAlreadyExists):
					b.persisted.Store(t, struct{}{})
				default:
					b.cfg.Logger.Debug("broker: auto-create topic", "topic", t, "err", err)
				}
			}
		})
	})
	b.observe(kmsg.DeleteTopics, func(kmsg.Request) { b.persisted.Clear() })
}

// defaultControlGeneration is how many requests one kfake control function
// sees before observe replaces it; see there.
const defaultControlGeneration = 4096

// observe runs fn on every request with key before kfake handles it, on
// kfake's request loop (fn may call SleepControl). fn cannot answer the
// request.
//
// kfake remembers, for each control function it keeps, the last request
// of every connection that function saw, and never forgets a closed
// connection. So that a long-running broker does not accumulate closed
// connections, every Config.controlGeneration calls we drop the function
// and add it afresh with an empty memory.
func (b *Broker) observe(key kmsg.Key, fn func(kmsg.Request)) {
	c := b.cluster
	var calls atomic.Int64
	c.ControlKey(int16(key), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if calls.Add(1) == int64(b.cfg.controlGeneration) {
			c.DropControl()
			b.observe(key, fn)
		} else {
			c.KeepControl()
		}
		fn(kreq)
		return nil, nil, false
	})
}

func (b *Broker) dataDirForLog() string {
	if b.cfg.Ephemeral {
		return "(ephemeral)"
	}
	return b.cfg.DataDir
}

// kfakeLogger adapts kfake's printf logger to slog. kfake logs every
// request at info, so its info and debug go to slog's Debug.
//
// kfake's Close reports persistence failures only by logging them at
// error level; while closing we collect those so Close can return them.
type kfakeLogger struct {
	l *slog.Logger

	mu        sync.Mutex
	closing   bool
	closeErrs []error
}

// Logf implements kfake.Logger.
func (k *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
		k.mu.Lock()
		if k.closing {
			k.closeErrs = append(k.closeErrs, fmt.Errorf(format, args...))
		}
		k.mu.Unlock()
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo, kfake.LogLevelDebug:
		sl = slog.LevelDebug
	default:
		return
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, sl) {
		return
	}
	k.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "kfake")
}

func (k *kfakeLogger) beginClose() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closing = true
}

func (k *kfakeLogger) endClose() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closing = false
	return k.closeErrs
}
