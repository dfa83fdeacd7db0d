package sqsserver

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors returned by SendToARN.
var (
	// ErrQueueDoesNotExist reports that no queue has the given ARN.
	ErrQueueDoesNotExist = errors.New("sqsserver: queue does not exist")
	// ErrFIFOQueue reports that a notification target is a FIFO queue, which,
	// as in SQS, cannot receive S3 event notifications.
	ErrFIFOQueue = errors.New("sqsserver: FIFO queues cannot be notification targets")
	// ErrClosed reports a call after Close.
	ErrClosed = errors.New("sqsserver: server closed")
)

// Error codes. Each is the short name clients see after the SDK strips the
// namespace from "__type"; errorSpecFor maps it to the wire shape.
const (
	codeQueueDoesNotExist        = "QueueDoesNotExist"
	codeQueueNameExists          = "QueueNameExists"
	codeInvalidParameterValue    = "InvalidParameterValue"
	codeMissingParameter         = "MissingParameter"
	codeInvalidAttributeName     = "InvalidAttributeName"
	codeInvalidAttributeValue    = "InvalidAttributeValue"
	codeInvalidMessageContents   = "InvalidMessageContents"
	codeBatchEntryIdsNotDistinct = "BatchEntryIdsNotDistinct"
	codeTooManyEntriesInBatch    = "TooManyEntriesInBatchRequest"
	codeEmptyBatchRequest        = "EmptyBatchRequest"
	codeInvalidBatchEntryID      = "InvalidBatchEntryId"
	codeBatchRequestTooLong      = "BatchRequestTooLong"
	codeMessageNotInflight       = "MessageNotInflight"
	codeReceiptHandleIsInvalid   = "ReceiptHandleIsInvalid"
	codeUnsupportedOperation     = "UnsupportedOperation"
	codeUnknownOperation         = "UnknownOperation"
	codeSerialization            = "Serialization"
	codeInternal                 = "InternalFailure"
	codeServiceUnavailable       = "ServiceUnavailable"
)

// apiError is an SQS error response.
type apiError struct {
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(code, format string, args ...any) *apiError {
	if len(args) == 0 {
		return &apiError{code: code, message: format}
	}
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

// errorSpec is how an error code goes on the wire.
type errorSpec struct {
	wireType  string // the "__type" member of the body
	status    int    // HTTP status
	queryCode string // legacy query-protocol code sent in x-amzn-query-error
	receiver  bool   // fault is the service's, not the caller's
}

// errorSpecFor returns the shape SQS uses for code. Modeled errors carry the
// "com.amazonaws.sqs#" namespace and the status of their smithy httpError
// trait; the generic validation errors come from the coral framework, as they
// do on SQS ("com.amazon.coral.service#InvalidParameterValueException" with
// x-amzn-query-error "InvalidParameterValue;Sender").
func errorSpecFor(code string) errorSpec {
	const sqsNS = "com.amazonaws.sqs#"
	const coralNS = "com.amazon.coral.service#"
	const legacy = "AWS.SimpleQueueService."
	switch code {
	case codeQueueDoesNotExist:
		return errorSpec{sqsNS + code, http.StatusBadRequest, legacy + "NonExistentQueue", false}
	case codeQueueNameExists:
		return errorSpec{sqsNS + code, http.StatusBadRequest, "QueueAlreadyExists", false}
	case codeInvalidParameterValue:
		return errorSpec{coralNS + "InvalidParameterValueException", http.StatusBadRequest, code, false}
	case codeMissingParameter:
		return errorSpec{coralNS + "MissingRequiredParameterException", http.StatusBadRequest, code, false}
	case codeInvalidAttributeName, codeInvalidAttributeValue, codeInvalidMessageContents:
		return errorSpec{sqsNS + code, http.StatusBadRequest, code, false}
	case codeBatchEntryIdsNotDistinct, codeTooManyEntriesInBatch, codeEmptyBatchRequest,
		codeInvalidBatchEntryID, codeBatchRequestTooLong, codeMessageNotInflight,
		codeUnsupportedOperation:
		return errorSpec{sqsNS + code, http.StatusBadRequest, legacy + code, false}
	case codeReceiptHandleIsInvalid:
		return errorSpec{sqsNS + code, http.StatusNotFound, code, false}
	case codeUnknownOperation:
		return errorSpec{coralNS + "UnknownOperationException", http.StatusBadRequest, "InvalidAction", false}
	case codeSerialization:
		return errorSpec{coralNS + "SerializationException", http.StatusBadRequest, "", false}
	case codeServiceUnavailable:
		return errorSpec{"com.amazon.coral.availability#ServiceUnavailableException", http.StatusServiceUnavailable, "ServiceUnavailable", true}
	default:
		return errorSpec{coralNS + "InternalFailure", http.StatusInternalServerError, "InternalError", true}
	}
}

// batchCode is the Code of a BatchResultErrorEntry for an error: the legacy
// query code, which is what SQS reports there (e.g. "InvalidParameterValue").
func batchCode(e *apiError) string {
	spec := errorSpecFor(e.code)
	if spec.queryCode != "" {
		return spec.queryCode
	}
	return e.code
}

// Frequently used errors.

func errQueueDoesNotExist() *apiError {
	return newError(codeQueueDoesNotExist, "The specified queue does not exist.")
}

func errMissing(param string) *apiError {
	return newError(codeMissingParameter, "The request must contain the parameter %s.", param)
}

func errInvalidValue(value any, param, reason string) *apiError {
	return newError(codeInvalidParameterValue, "Value %v for parameter %s is invalid. Reason: %s", value, param, reason)
}

func errInvalidReceiptHandle(handle string) *apiError {
	return newError(codeReceiptHandleIsInvalid, "The input receipt handle %q is not a valid receipt handle.", handle)
}

func errHandleExpired(handle string) *apiError {
	return errInvalidValue(handle, "ReceiptHandle", "The receipt handle has expired.")
}
