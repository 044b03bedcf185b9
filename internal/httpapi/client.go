package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	if resp.StatusCode != http.StatusOK {
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
