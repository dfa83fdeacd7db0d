package awstest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

type dbgW struct {
	http.ResponseWriter
	n int
}

func (w *dbgW) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += n
	if err != nil {
		fmt.Fprintf(os.Stderr, "SERVERWRITE after %d: %v\n", w.n, err)
	}
	return n, err
}

func TestZZDebug(t *testing.T) {
	cloud := localcloud.New(localcloud.Config{})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &dbgW{ResponseWriter: w}
		cloud.ServeHTTP(dw, r)
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" && dw.n > 100000 {
			fmt.Fprintf(os.Stderr, "SERVERRESP %s wrote %d declared %s ctxErr=%v\n", r.RemoteAddr, dw.n, w.Header().Get("Content-Length"), r.Context().Err())
		}
	}), ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			fmt.Fprintf(os.Stderr, "CONNSTATE %s %s\n", c.RemoteAddr(), s)
		}
	}, ErrorLog: nil}
	go srv.Serve(l)
	defer srv.Close()
	h := Harness{Name: "dbg", Endpoint: "http://" + l.Addr().String(), Region: "us-east-1", AccessKey: "test", SecretKey: "test", Advance: cloud.Clock().Advance}
	h.S3, h.SQS = NewClients(h.Endpoint, h.Region, h.AccessKey, h.SecretKey)
	Run(t, h)
}
