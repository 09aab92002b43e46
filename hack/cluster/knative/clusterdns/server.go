package main

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// server answers DNS queries from a zone over UDP and TCP.
type server struct {
	log  *slog.Logger
	zone *zone
}

func (s *server) serveUDP(pc net.PacketConn) error {
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		resp := s.handle(buf[:n], 512)
		if resp != nil {
			_, _ = pc.WriteTo(resp, addr)
		}
	}
}

func (s *server) serveTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.serveConn(c)
	}
}

func (s *server) serveConn(c net.Conn) {
	defer c.Close()
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := s.handle(msg, 65535)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// handle answers one query message; it returns nil for messages it drops.
func (s *server) handle(msg []byte, limit int) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(msg)
	if err != nil || hdr.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return s.reply(hdr, nil, dnsmessage.RCodeFormatError, nil, limit)
	}
	if hdr.OpCode != 0 {
		return s.reply(hdr, &q, dnsmessage.RCodeNotImplemented, nil, limit)
	}
	name := strings.ToLower(q.Name.String())
	var rrs []dnsmessage.Resource
	rcode := dnsmessage.RCodeNameError
	// Follow CNAMEs within the zone, at most a few hops.
	for range 8 {
		a, ok := s.zone.lookup(name)
		if !ok {
			break
		}
		rcode = dnsmessage.RCodeSuccess
		rn, err := dnsmessage.NewName(name)
		if err != nil {
			break
		}
		h := dnsmessage.ResourceHeader{Name: rn, Class: dnsmessage.ClassINET, TTL: s.zone.ttl}
		if a.cname != "" {
			target, err := dnsmessage.NewName(a.cname)
			if err != nil {
				break
			}
			h.Type = dnsmessage.TypeCNAME
			rrs = append(rrs, dnsmessage.Resource{Header: h, Body: &dnsmessage.CNAMEResource{CNAME: target}})
			if q.Type == dnsmessage.TypeCNAME {
				break
			}
			name = a.cname
			continue
		}
		if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL {
			h.Type = dnsmessage.TypeA
			for _, ip := range a.ipv4 {
				rrs = append(rrs, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: ip.As4()}})
			}
		}
		break
	}
	if len(rrs) > 0 {
		rcode = dnsmessage.RCodeSuccess
	}
	s.log.Debug("query", "name", q.Name.String(), "type", q.Type, "rcode", rcode, "answers", len(rrs))
	return s.reply(hdr, &q, rcode, rrs, limit)
}

func (s *server) reply(req dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, answers []dnsmessage.Resource, limit int) []byte {
	hdr := dnsmessage.Header{
		ID:                 req.ID,
		Response:           true,
		OpCode:             req.OpCode,
		Authoritative:      rcode == dnsmessage.RCodeSuccess || rcode == dnsmessage.RCodeNameError,
		RecursionDesired:   req.RecursionDesired,
		RecursionAvailable: false,
		RCode:              rcode,
	}
	for {
		b := dnsmessage.NewBuilder(make([]byte, 0, 512), hdr)
		b.EnableCompression()
		out, err := build(&b, q, answers)
		if err != nil {
			s.log.Warn("build reply", "err", err)
			return nil
		}
		if len(out) <= limit || len(answers) == 0 {
			return out
		}
		// Too big for UDP: send what fits and set TC so the client retries on TCP.
		hdr.Truncated = true
		answers = answers[:len(answers)/2]
	}
}

func build(b *dnsmessage.Builder, q *dnsmessage.Question, answers []dnsmessage.Resource) ([]byte, error) {
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil, err
		}
		if err := b.Question(*q); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, rr := range answers {
		var err error
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rr.Header, *body)
		case *dnsmessage.CNAMEResource:
			err = b.CNAMEResource(rr.Header, *body)
		default:
			err = errors.New("unsupported resource type")
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
