package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Client calls a job's control API.
type Client struct {
	// Addr is the server's host:port.
	Addr string
	// Token is sent as the bearer token when set.
	Token string
	// HTTP is the client to use; default http.DefaultClient. A savepoint
	// call lasts as long as the savepoint: bound it with the context.
	HTTP *http.Client
}

// APIError is an error answer of the API.
type APIError struct {
	// Code is the HTTP status code.
	Code int
	// Message is the server's error text.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Jobs lists the jobs of the process.
func (c *Client) Jobs(ctx context.Context) ([]JobInfo, error) {
	var list JobList
	if err := c.call(ctx, http.MethodGet, "/api/v1/jobs", nil, &list); err != nil {
		return nil, err
	}
	return list.Jobs, nil
}

// Savepoint takes a savepoint of job id and returns its path.
func (c *Client) Savepoint(ctx context.Context, id string) (string, error) {
	var resp SavepointResponse
	if err := c.call(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/savepoints", struct{}{}, &resp); err != nil {
		return "", err
	}
	return resp.Path, nil
}

// Stop stops job id with a savepoint (after the final watermark with
// drain) and returns the savepoint's path.
func (c *Client) Stop(ctx context.Context, id string, drain bool) (string, error) {
	yes := true
	var resp SavepointResponse
	if err := c.call(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/stop", StopRequest{Savepoint: &yes, Drain: drain}, &resp); err != nil {
		return "", err
	}
	return resp.Path, nil
}

// Job returns the overview of job id.
func (c *Client) Job(ctx context.Context, id string) (*JobOverview, error) {
	var o JobOverview
	if err := c.call(ctx, http.MethodGet, jobPath(id, ""), nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Plan returns the job graph of job id.
func (c *Client) Plan(ctx context.Context, id string) (*Plan, error) {
	var p Plan
	if err := c.call(ctx, http.MethodGet, jobPath(id, "/plan"), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Vertex returns vertex vid of job id with its subtasks.
func (c *Client) Vertex(ctx context.Context, id, vid string) (*VertexDetail, error) {
	var v VertexDetail
	if err := c.call(ctx, http.MethodGet, jobPath(id, "/vertices/"+url.PathEscape(vid)), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Checkpoints returns the checkpoint counts, latest snapshots and history
// of job id.
func (c *Client) Checkpoints(ctx context.Context, id string) (*CheckpointOverview, error) {
	var o CheckpointOverview
	if err := c.call(ctx, http.MethodGet, jobPath(id, "/checkpoints"), nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Checkpoint returns checkpoint cid of job id with its per-subtask parts.
func (c *Client) Checkpoint(ctx context.Context, id string, cid int64) (*CheckpointDetail, error) {
	var d CheckpointDetail
	if err := c.call(ctx, http.MethodGet, jobPath(id, "/checkpoints/"+strconv.FormatInt(cid, 10)), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Exceptions returns the newest failure and restore of job id.
func (c *Client) Exceptions(ctx context.Context, id string) (*Exceptions, error) {
	var e Exceptions
	if err := c.call(ctx, http.MethodGet, jobPath(id, "/exceptions"), nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// TriggerCheckpoint takes a checkpoint of job id and returns its id once
// it is complete.
func (c *Client) TriggerCheckpoint(ctx context.Context, id string) (int64, error) {
	var resp TriggerCheckpointResponse
	if err := c.call(ctx, http.MethodPost, jobPath(id, "/checkpoints"), struct{}{}, &resp); err != nil {
		return 0, err
	}
	return resp.ID, nil
}

// Cancel cancels job id (no final checkpoint). It returns once the cancel
// was accepted; the job ends on its own.
func (c *Client) Cancel(ctx context.Context, id string) error {
	var resp CancelResponse
	return c.call(ctx, http.MethodPost, jobPath(id, "/cancel"), struct{}{}, &resp)
}

func jobPath(id, rest string) string { return "/api/v1/jobs/" + url.PathEscape(id) + rest }

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the job running with --http %s?)", method, path, err, c.Addr)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(b))
		}
		return &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: bad answer %q: %w", method, path, b, err)
	}
	return nil
}
