package kafka

import (
	"slices"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

var _ sluice.SourceDescriber = (*Source[int])(nil)

// DescribeSource says what the source reads, for the checkpoint metadata:
// type "kafka" and its topics, sorted, or "regex:<TopicRegex>". A job whose
// source reads other topics refuses to restore the checkpoint's offsets
// unless Config.AllowSourceChange is set (docs/design.md §10).
func (s *Source[T]) DescribeSource() checkpoint.SourceIdentity {
	id := checkpoint.SourceIdentity{Type: "kafka"}
	if s.cfg.TopicRegex != "" {
		id.Names = []string{"regex:" + s.cfg.TopicRegex}
		return id
	}
	id.Names = slices.Sorted(slices.Values(s.cfg.Topics))
	return id
}
