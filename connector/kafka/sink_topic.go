package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/restart"
)

// TopicSpec says how the sink creates a missing output topic
// (SinkConfig.CreateTopic). A zero field means the broker's default
// (num.partitions, default.replication.factor).
type TopicSpec struct {
	// Partitions is the number of partitions; 0 means the broker's default.
	Partitions int32
	// ReplicationFactor is the number of replicas of each partition; 0
	// means the broker's default.
	ReplicationFactor int16
	// Configs are topic configs such as "retention.ms"; nil means none.
	Configs map[string]*string
}

// checkSinkTopic runs when the sink's subtask 0 opens: it makes sure Topic
// exists, creating it when CreateTopic allows, and otherwise fails the job
// terminally (restart.Unrecoverable), since a restart cannot create a
// topic. Unreachable brokers and retriable answers are retried for
// RetryTimeout and then fail the attempt, not the job.
func checkSinkTopic[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger) error {
	if cfg.Topic == "" {
		return nil // TopicSelector picks the topics; they are not known here
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.RetryTimeout)
	defer cancel()
	cl, err := kgo.NewClient(sinkClientOpts(cfg, log)...)
	if err != nil {
		return fmt.Errorf("kafka sink: client: %w", err)
	}
	defer cl.Close()
	bo := newSinkBackoff(cfg.RetryBackoff, cfg.RetryTimeout)
	for {
		err := sinkTopicOnce(ctx, cfg, log, cl)
		if err == nil || restart.IsUnrecoverable(err) || !sinkRetriable(err) || !bo.wait(ctx) {
			return err
		}
		log.Debug("checking the output topic failed, retrying", "topic", cfg.Topic, "err", err)
	}
}

func sinkTopicOnce[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, cl *kgo.Client) error {
	_, err := listPartitions(ctx, cl, []string{cfg.Topic}, nil, true)
	if !errors.Is(err, ErrUnknownTopic) {
		if err != nil {
			return fmt.Errorf("kafka sink: metadata of %s %q: %w", KeySinkTopic, cfg.Topic, err)
		}
		return nil
	}
	spec := cfg.CreateTopic
	if spec == nil {
		return restart.Unrecoverable(fmt.Errorf("kafka sink: %s %q: %w on %s; create it first, e.g. "+
			"kafka-topics.sh --bootstrap-server %s --create --topic %s --partitions 4 "+
			"(or, on the embedded broker, any producer that may auto-create it: kcat -P -b %s -t %s), "+
			"or set SinkConfig.CreateTopic (%s) to let the sink create it",
			KeySinkTopic, cfg.Topic, ErrUnknownTopic, strings.Join(cfg.Brokers, ","),
			cfg.Brokers[0], cfg.Topic, cfg.Brokers[0], cfg.Topic, KeySinkCreateTopic))
	}
	parts, repl := spec.Partitions, spec.ReplicationFactor
	if parts == 0 {
		parts = -1
	}
	if repl == 0 {
		repl = -1
	}
	_, err = kadm.NewClient(cl).CreateTopic(ctx, parts, repl, spec.Configs, cfg.Topic)
	switch {
	case err == nil:
		log.Info("created the output topic", "topic", cfg.Topic, "partitions", spec.Partitions, "replication_factor", spec.ReplicationFactor)
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil // created concurrently
	case sinkRetriable(err):
		return fmt.Errorf("kafka sink: create %s %q: %w", KeySinkTopic, cfg.Topic, err)
	default:
		return restart.Unrecoverable(fmt.Errorf("kafka sink: create %s %q (%s): %w", KeySinkTopic, cfg.Topic, KeySinkCreateTopic, err))
	}
}
