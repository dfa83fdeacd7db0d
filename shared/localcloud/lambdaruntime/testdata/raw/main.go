// Command raw is a runtime written against the Runtime API directly, as a
// non-Go runtime would be, to exercise what aws-lambda-go never does. Its
// event names an action. With RAW_INIT_ERROR set it reports an init error.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

var base = "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/"

type reply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

func post(path, errorType string, body []byte) reply {
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	if errorType != "" {
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Body: b}
}

func main() {
	if os.Getenv("RAW_INIT_ERROR") != "" {
		r := post("init/error", "Runtime.ConfigError", []byte(`{"errorMessage":"TABLE_NAME is not set","errorType":"Runtime.ConfigError"}`))
		fmt.Println("init error:", r.Status)
		time.Sleep(time.Hour) // Lambda resets the environment
	}
	for {
		resp, err := http.Get(base + "invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var ev struct{ Action string }
		_ = json.Unmarshal(event, &ev)
		switch ev.Action {
		case "headers":
			h := make(map[string]string)
			for k := range resp.Header {
				if strings.HasPrefix(k, "Lambda-Runtime-") {
					h[k] = resp.Header.Get(k)
				}
			}
			b, _ := json.Marshal(h)
			post("invocation/"+id+"/response", "", b)
		case "bad-id":
			b, _ := json.Marshal(post("invocation/not-a-request-id/response", "", []byte(`{}`)))
			post("invocation/"+id+"/response", "", b)
		case "big":
			r := post("invocation/"+id+"/response", "", bytes.Repeat([]byte("x"), 7<<20))
			fmt.Printf("big response: %d %s\n", r.Status, r.Body)
		case "error-text":
			post("invocation/"+id+"/error", "Runtime.Custom", []byte("something broke"))
		case "twice":
			post("invocation/"+id+"/response", "", []byte(`"first"`))
			r := post("invocation/"+id+"/response", "", []byte(`"second"`))
			fmt.Printf("second response: %d %s\n", r.Status, r.Body)
		default:
			post("invocation/"+id+"/response", "", event)
		}
	}
}
