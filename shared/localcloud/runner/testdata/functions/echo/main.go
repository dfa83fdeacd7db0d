// Command echo is a test function for HTTP API routes: it answers with the
// request it received, and echoes binary bodies back as binary.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	if req.RawPath == "/fail" {
		return events.APIGatewayV2HTTPResponse{}, errors.New("asked to fail")
	}
	if req.RequestContext.HTTP.Method == "PUT" {
		body := req.Body
		if !req.IsBase64Encoded {
			body = base64.StdEncoding.EncodeToString([]byte(req.Body))
		}
		return events.APIGatewayV2HTTPResponse{
			StatusCode: 201, IsBase64Encoded: true, Body: body,
			Headers: map[string]string{"Content-Type": "application/octet-stream", "X-Path": req.PathParameters["path"]},
			Cookies: []string{"seen=1; Path=/"},
		}, nil
	}
	b, _ := json.Marshal(req)
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(b)}, nil
}

func main() { lambda.Start(handle) }
