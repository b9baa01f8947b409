package s3lab

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// requestLineMax is how much of a request the front buffers to find the
// bucket: the request line and headers of an S3 request fit well within it.
const requestLineMax = 16 << 10

// redirectWriteTimeout bounds writing the redirect to a client that does
// not read.
const redirectWriteTimeout = 5 * time.Second

// headerWait bounds how long the front waits for a request's head before
// forwarding the connection as it is.
const headerWait = 5 * time.Second

// firstRequest peeks at the request line and Host header of the first HTTP
// request on a connection, without consuming them, and returns the method
// and the bucket it addresses: the first path segment (path-style) or,
// failing that, the first label of a virtual-hosted name. Empty when it
// cannot tell.
func firstRequest(c net.Conn, in *bufio.Reader) (method, bucket string, query url.Values) {
	c.SetReadDeadline(time.Now().Add(headerWait))
	defer c.SetReadDeadline(time.Time{})

	// Each Peek past what is buffered reads once more from the
	// connection; stop at the end of the head or when the buffer is full.
	var head []byte
	for {
		head, _ = in.Peek(in.Buffered())
		if bytes.Contains(head, []byte("\r\n\r\n")) || len(head) == requestLineMax {
			break
		}
		if _, err := in.Peek(in.Buffered() + 1); err != nil {
			head, _ = in.Peek(in.Buffered())
			break
		}
	}
	lines := strings.Split(string(head), "\r\n")

	fields := strings.Fields(lines[0])
	if len(fields) < 2 {
		return "", "", nil
	}
	method = fields[0]
	u, err := url.ParseRequestURI(fields[1])
	if err != nil {
		return method, "", nil
	}
	query = u.Query()
	if seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); seg != "" {
		return method, seg, query
	}

	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(name, "host") {
			host := strings.TrimSpace(value)
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if label, rest, ok := strings.Cut(host, "."); ok && strings.HasPrefix(rest, "s3") {
				return method, label, query
			}
		}
	}
	return method, "", query
}

// writePolicy answers GetBucketPolicy with doc, as S3 does.
func writePolicy(c net.Conn, doc string) {
	c.SetWriteDeadline(time.Now().Add(redirectWriteTimeout))
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n"+
		"x-amz-request-id: LABPOLICY\r\n"+
		"Content-Type: application/json\r\n"+
		"Content-Length: %d\r\n"+
		"Connection: close\r\n\r\n%s", len(doc), doc)
}

// writeRedirect answers as S3 does a request sent to the wrong region: 301
// PermanentRedirect naming the bucket's region in x-amz-bucket-region, with
// an error document except for HEAD.
func writeRedirect(c net.Conn, method, bucket, region string) {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>s3.%s.amazonaws.com</Endpoint><Bucket>%s</Bucket><RequestId>LABREDIRECT</RequestId></Error>`,
		region, bucket)
	if method == "HEAD" {
		body = ""
	}

	c.SetWriteDeadline(time.Now().Add(redirectWriteTimeout))
	fmt.Fprintf(c, "HTTP/1.1 301 Moved Permanently\r\n"+
		"x-amz-bucket-region: %s\r\n"+
		"x-amz-request-id: LABREDIRECT\r\n"+
		"Content-Type: application/xml\r\n"+
		"Content-Length: %d\r\n"+
		"Connection: close\r\n\r\n%s", region, len(body), body)
}
