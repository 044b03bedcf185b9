package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"
)

// Defaults applied by [Config.withDefaults]. DefaultPort is not among them:
// a zero Port means "pick a free port", so callers that want the
// conventional Kafka port ask for it, as [DefaultConfig] and the
// `sluice broker` command do.
const (
	// DefaultPort is the conventional Kafka port.
	DefaultPort = 9092
	// DefaultHost is the address the broker listens on and advertises.
	DefaultHost = "127.0.0.1"
	// DefaultDataDir is where a persistent broker keeps its log, relative
	// to the working directory.
	DefaultDataDir = "./data/broker"
	// DefaultPartitions is the partition count of topics created on
	// demand. Four lets a local job run with parallelism up to four
	// without anyone creating topics by hand.
	DefaultPartitions = 4
	// DefaultTxnMaxTimeout is the broker's transaction.max.timeout.ms.
	// kfake and Kafka default to 15 minutes; a Flink-style sink keeps its
	// transaction open from one checkpoint to the commit after the next,
	// so slow or failed-and-retried checkpoints need more head room.
	DefaultTxnMaxTimeout = time.Hour

	// maxPartitions bounds DefaultPartitions. kfake creates every
	// partition eagerly (and a directory per partition when persistent),
	// so a typo such as 40000 would be slow to recover from.
	maxPartitions = 10000
	// maxTxnMaxTimeout is the largest transaction.max.timeout.ms that
	// fits the int32 milliseconds Kafka and kfake use (about 24.8 days).
	maxTxnMaxTimeout = time.Duration(math.MaxInt32) * time.Millisecond
)

// Config configures the embedded broker. The zero value of a field means
// its default, except Port, where zero picks a free port (what tests want);
// [DefaultConfig] returns the configuration `sluice broker` starts with.
//
// Validation errors name the key as `broker.<flag>`, the name of the
// matching `sluice broker` flag, e.g. `broker.port: must be 0..65535, got
// 70000`.
type Config struct {
	// Port to listen on. 0 picks a free port; read it back with
	// [Broker.Addrs]. [DefaultConfig] sets 9092.
	Port int
	// Host is the address to listen on, which is also the address the
	// broker advertises to clients in metadata responses (kfake advertises
	// its listener's address). It must therefore be an address clients
	// can dial: a wildcard such as 0.0.0.0 is refused. Default 127.0.0.1.
	Host string
	// DataDir is the directory the log, offsets and transaction state
	// persist to. Default ./data/broker unless Ephemeral is set. Only one
	// broker may use a directory at a time; Start takes a lock on it.
	DataDir string
	// Ephemeral keeps everything in memory: nothing survives Close.
	// DataDir must then be empty.
	Ephemeral bool
	// DefaultPartitions is the partition count of topics that are created
	// on demand (a client's metadata request for an unknown topic, or
	// CreateTopics with -1 partitions). Default 4. Topics that already
	// exist keep their partition count.
	DefaultPartitions int
	// SyncWrites fsyncs every produced batch before acknowledging it.
	// Default false, which like Kafka's default relies on the page cache:
	// a machine crash (not a process crash) can lose recent writes.
	SyncWrites bool
	// TxnMaxTimeout is the broker's transaction.max.timeout.ms, the
	// largest transaction timeout a producer may ask for. Producers still
	// choose their own timeout (kgo.TransactionTimeout); this only allows
	// long ones. Default 1h, at most about 24.8 days (int32 ms).
	TxnMaxTimeout time.Duration
	// Logger receives the broker's own messages and kfake's, at these
	// levels: kfake errors and warnings at Error and Warn, its per-request
	// info and debug messages at Debug. Default slog.Default().
	Logger *slog.Logger

	// controlGeneration overrides defaultControlGeneration in tests.
	controlGeneration int
}

// DefaultConfig returns the configuration `sluice broker` starts with: port
// 9092 on 127.0.0.1, persisting to ./data/broker, 4 partitions per created
// topic and a 1h transaction.max.timeout.ms.
func DefaultConfig() Config {
	return Config{
		Port:              DefaultPort,
		Host:              DefaultHost,
		DataDir:           DefaultDataDir,
		DefaultPartitions: DefaultPartitions,
		TxnMaxTimeout:     DefaultTxnMaxTimeout,
	}
}

// Validate reports every invalid field, each naming its key, joined with
// errors.Join. It accepts zero values that mean a default.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("broker.port: must be 0..65535, got %d", c.Port))
	}
	if c.Host != "" {
		if strings.ContainsAny(c.Host, " \t/[]") || strings.Count(c.Host, ":") == 1 {
			errs = append(errs, fmt.Errorf("broker.host: must be a host name or IP address without port or brackets, got %q", c.Host))
		} else if ip := net.ParseIP(c.Host); ip != nil && ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("broker.host: must be an address clients can dial, got wildcard %q (the broker advertises its listen address)", c.Host))
		}
	}
	if c.Ephemeral && c.DataDir != "" {
		errs = append(errs, fmt.Errorf("broker.data-dir: must be empty when broker.ephemeral is set, got %q", c.DataDir))
	}
	if c.DefaultPartitions < 0 || c.DefaultPartitions > maxPartitions {
		errs = append(errs, fmt.Errorf("broker.partitions: must be 1..%d (0 for the default %d), got %d", maxPartitions, DefaultPartitions, c.DefaultPartitions))
	}
	switch {
	case c.TxnMaxTimeout < 0 || c.TxnMaxTimeout > maxTxnMaxTimeout:
		errs = append(errs, fmt.Errorf("broker.txn-max-timeout: must be 1ms..%v (0 for the default %v), got %v", maxTxnMaxTimeout, DefaultTxnMaxTimeout, c.TxnMaxTimeout))
	case c.TxnMaxTimeout > 0 && c.TxnMaxTimeout < time.Millisecond:
		errs = append(errs, fmt.Errorf("broker.txn-max-timeout: must be at least 1ms (it is sent in milliseconds), got %v", c.TxnMaxTimeout))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields set to their defaults. Port is
// left alone: zero means a free port.
func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.DataDir == "" && !c.Ephemeral {
		c.DataDir = DefaultDataDir
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = DefaultPartitions
	}
	if c.TxnMaxTimeout == 0 {
		c.TxnMaxTimeout = DefaultTxnMaxTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.controlGeneration == 0 {
		c.controlGeneration = defaultControlGeneration
	}
	return c
}
