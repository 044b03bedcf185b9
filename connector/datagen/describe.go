package datagen

import (
	"fmt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

var _ sluice.SourceDescriber = (*Source)(nil)

// DescribeSource says what the source generates, for the checkpoint
// metadata: type "datagen" and the parameters that decide which records
// exist (splits, keys, distribution, seed). Rate and RecordsPerSplit are
// left out, so a restored job may run faster or longer; a job generating
// other records refuses to restore the checkpoint's positions unless
// Config.AllowSourceChange is set (docs/design.md §10).
func (s *Source) DescribeSource() checkpoint.SourceIdentity {
	c := s.cfg
	return checkpoint.SourceIdentity{Type: "datagen", Names: []string{
		fmt.Sprintf("distribution=%s", c.Distribution),
		fmt.Sprintf("keys=%d", c.Keys),
		fmt.Sprintf("seed=%d", c.Seed),
		fmt.Sprintf("splits=%d", c.Splits),
	}}
}
