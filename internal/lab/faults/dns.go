package faults

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// maxDNSMessage is the largest DNS message over either transport.
const maxDNSMessage = 65535

// DNS answers every query, over UDP and TCP on one loopback port, with the
// bytes Reply returns for it. The query's id is written over the first two
// bytes, so that a client reads the answer instead of dropping it as
// someone else's.
type DNS struct {
	udp net.PacketConn
	tcp net.Listener

	mu    sync.Mutex
	reply func(query []byte, tcp bool) []byte

	wg sync.WaitGroup
}

// StartDNS listens on a free loopback port; reply may be nil until SetReply.
func StartDNS(reply func(query []byte, tcp bool) []byte) (*DNS, error) {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		d := &DNS{udp: pc, tcp: ln, reply: reply}
		d.wg.Add(2)
		go d.serveUDP()
		go d.serveTCP()
		return d, nil
	}
	return nil, lastErr
}

// Addr is the host:port the server answers on.
func (d *DNS) Addr() string { return d.udp.LocalAddr().String() }

// SetReply replaces the function that makes answers.
func (d *DNS) SetReply(reply func(query []byte, tcp bool) []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reply = reply
}

func (d *DNS) answer(q []byte, tcp bool) []byte {
	d.mu.Lock()
	reply := d.reply
	d.mu.Unlock()
	if reply == nil || len(q) < 2 {
		return nil
	}
	out := append([]byte(nil), reply(q, tcp)...)
	if len(out) >= 2 {
		copy(out, q[:2])
	}
	if len(out) > maxDNSMessage {
		out = out[:maxDNSMessage]
	}
	return out
}

func (d *DNS) serveUDP() {
	defer d.wg.Done()
	buf := make([]byte, maxDNSMessage)
	for {
		n, from, err := d.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n], false); out != nil {
			d.udp.WriteTo(out, from)
		}
	}
}

func (d *DNS) serveTCP() {
	defer d.wg.Done()
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(readHeaderTimeout))
			var n uint16
			if binary.Read(c, binary.BigEndian, &n) != nil {
				return
			}
			q := make([]byte, n)
			if _, err := io.ReadFull(c, q); err != nil {
				return
			}
			out := d.answer(q, true)
			if out == nil {
				return
			}
			c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
			c.Write(out)
		}()
	}
}

// Close stops the server and waits for its goroutines.
func (d *DNS) Close() error {
	err := errors.Join(d.udp.Close(), d.tcp.Close())
	d.wg.Wait()
	return err
}
