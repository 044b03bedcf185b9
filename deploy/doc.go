// Package deploy holds no code: its directory ships the files an operator
// deploys beside a Sluice job, and its tests check them.
//
//   - prometheus/alerts.yml: Prometheus alerting rules over the job's
//     metrics (docs/metrics.md), with their unit tests in
//     prometheus/alerts_test.yml;
//   - grafana/sluice.json: a Grafana dashboard over the same metrics.
//
// The tests validate the rules with promtool (check rules, test rules) and
// check that the rules and the dashboard use only the metric names the job
// exports. They skip the promtool parts when promtool is not installed.
package deploy
