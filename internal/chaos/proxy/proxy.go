// Package proxy is the TCP proxy that `sluice chaos` puts between a job and
// its Kafka brokers to partition them (docs/chaos.md): it forwards bytes
// both ways until told to blackhole them (connections stay open, nothing
// gets through, as when a link drops packets), reset them (every
// connection is closed with a TCP RST and new ones are reset at once, as
// when a host or firewall rejects them) or delay them (every chunk waits a
// fixed time before it is forwarded, as on a slow link). Modes change at any
// moment and apply to open connections too.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with the bytes of its connections.
type Mode int32

// The modes.
const (
	// Pass forwards everything.
	Pass Mode = iota
	// Blackhole accepts connections and keeps them open but forwards
	// nothing: reads from either side are held (not lost) until the mode
	// changes, so a peer sees a link that went silent.
	Blackhole
	// Reset closes every connection with a TCP RST (linger 0) and resets
	// new connections as soon as they are accepted.
	Reset
	// Delay forwards every chunk after the proxy's delay.
	Delay
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case Delay:
		return "delay"
	}
	return fmt.Sprintf("mode(%d)", int32(m))
}

// Proxy forwards TCP connections from its listener to one target address.
type Proxy struct {
	ln     net.Listener
	target string

	mode  atomic.Int32
	delay atomic.Int64 // nanoseconds, for Delay

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every mode change
	conns   map[*pair]struct{}
	closed  bool
	wg      sync.WaitGroup

	accepted atomic.Int64
}

// pair is one proxied connection: the client's and the target's sides.
type pair struct{ client, server net.Conn }

// Start listens on listen (host:port; port 0 picks a free one) and forwards
// every connection to target.
func Start(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("proxy listen %s: %w", listen, err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// Accepted counts the connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// SetMode switches the mode; delay is used by Delay only. Reset closes the
// open connections at once.
func (p *Proxy) SetMode(m Mode, delay time.Duration) {
	p.delay.Store(int64(delay))
	p.mode.Store(int32(m))
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	var reset []*pair
	if m == Reset {
		for c := range p.conns {
			reset = append(reset, c)
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		c.reset()
	}
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (c *pair) reset() {
	for _, s := range []net.Conn{c.client, c.server} {
		if tc, ok := s.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		_ = s.Close()
	}
}

func (c *pair) close() {
	_ = c.client.Close()
	_ = c.server.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(conn)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if p.Mode() == Reset {
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = client.Close()
		return
	}
	// A blackholed link does not connect either: wait until the mode
	// changes (the client's own dial timeout decides when it gives up).
	for p.Mode() == Blackhole {
		if !p.waitChange() {
			_ = client.Close()
			return
		}
	}
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &pair{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(server, client); done <- struct{}{} }()
	go func() { p.copy(client, server); done <- struct{}{} }()
	<-done
	c.close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// waitChange waits for the next mode change; false once the proxy closed.
func (p *Proxy) waitChange() bool {
	p.mu.Lock()
	ch, closed := p.changed, p.closed
	p.mu.Unlock()
	if closed {
		return false
	}
	<-ch
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed
}

// copy forwards src to dst chunk by chunk, applying the mode to each chunk
// before it is written.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			// Half-close: pass the EOF on.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// gate holds a chunk while the mode blackholes, waits out a delay, and
// reports false when the connection must end (Reset, or the proxy closed).
func (p *Proxy) gate() bool {
	for {
		switch p.Mode() {
		case Pass:
			return true
		case Delay:
			time.Sleep(time.Duration(p.delay.Load()))
			return p.Mode() != Reset
		case Reset:
			return false
		case Blackhole:
			if !p.waitChange() {
				return false
			}
		}
	}
}
