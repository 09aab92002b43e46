package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"ddi.dev/ddi/internal/protocol"
)

// Stream is an open snapshot stream. Recv returns its messages in order;
// Close (or the end of the context given to Client.Stream) ends it.
type Stream struct {
	body io.ReadCloser
	dec  *json.Decoder
}

// Stream opens the snapshot stream with hello. The stream lives until ctx
// ends or Close is called; the first message is a snapshot, or "unchanged"
// when hello's resume version and hash are still current.
func (c *Client) Stream(ctx context.Context, hello protocol.Hello) (*Stream, error) {
	req, err := c.newRequest(ctx, http.MethodPost, protocol.StreamPath, hello)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson, application/problem+json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readProblem(resp)
	}
	return &Stream{body: resp.Body, dec: json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))}, nil
}

// Recv returns the next message. At the end of the stream it returns
// io.EOF (the control plane closed it) or the transport's error.
func (s *Stream) Recv() (protocol.Message, error) {
	var m protocol.Message
	if err := s.dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return protocol.Message{}, io.EOF
		}
		return protocol.Message{}, fmt.Errorf("read stream: %w", err)
	}
	return m, nil
}

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }

// Ack acknowledges (or, with ack.Error set, rejects) a snapshot.
func (c *Client) Ack(ctx context.Context, ack protocol.Ack) error {
	_, err := c.do(ctx, http.MethodPost, protocol.AckPath, ack, nil)
	return err
}
