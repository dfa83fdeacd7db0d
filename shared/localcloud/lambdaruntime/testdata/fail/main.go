// Command fail returns a typed error for every event.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

// ValidationError is reported by Lambda as errorType "ValidationError".
type ValidationError struct{ Field string }

func (e *ValidationError) Error() string { return "invalid field " + e.Field }

func main() {
	lambda.Start(func(_ context.Context, _ json.RawMessage) (json.RawMessage, error) {
		return nil, &ValidationError{Field: "sku"}
	})
}
