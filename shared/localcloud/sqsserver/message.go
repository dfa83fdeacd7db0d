package sqsserver

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Message states.
const (
	stateDelayed  uint8 = iota + 1 // waiting for its delay to end
	stateReady                     // visible, may be received
	stateInflight                  // received and hidden until its deadline
)

// message is a message stored in a queue.
//
// The fields above the marker are set when the message is stored and never
// change afterwards, so responses can be rendered from them without the
// queue lock. The fields below belong to the queue and are guarded by its
// lock.
type message struct {
	id          string // MessageId
	body        string
	md5Body     string
	attrs       []msgAttr // sorted by name
	md5Attrs    string    // MD5 of all attrs, "" when there are none
	traceHeader string    // AWSTraceHeader system attribute
	hasTrace    bool
	senderID    string
	sentAt      int64 // SentTimestamp, Unix milliseconds
	groupID     string
	dedupID     string
	seqNumber   string // FIFO SequenceNumber
	dlqSource   string // DeadLetterQueueSourceArn

	// ---- guarded by the queue lock ----
	key          uint64    // queue-local id, encoded in receipt handles
	seq          uint64    // queue-local arrival order
	enqueuedAt   time.Time // start of the retention period
	state        uint8
	deadline     time.Time // end of the delay or of the visibility timeout
	receiveCount int
	firstReceive int64     // ApproximateFirstReceiveTimestamp, Unix ms
	receivedAt   time.Time // time of the last receive
	nonce        uint64    // receive number of the current receipt handle

	timerIdx  int // index in queue.timers, -1 when absent
	readyIdx  int // index in queue.ready (standard queues), -1 when absent
	retainIdx int // index in queue.retention

	group      *group // FIFO only
	prev, next *message
}

// msgAttr is a message attribute.
type msgAttr struct {
	name     string
	dataType string
	str      string
	bin      []byte
	binary   bool
}

// newMessageID returns a random version 4 UUID, the form of SQS MessageIds.
func newMessageID() string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], rand.Uint64())
	binary.BigEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// attributesMD5 is MD5OfMessageAttributes as SQS computes it: over the
// attributes sorted by name, each encoded as the 4-byte big-endian length and
// bytes of its name, of its data type, one transport byte (1 for String and
// Number, 2 for Binary) and the length and bytes of its value.
func attributesMD5(attrs []msgAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	h := md5.New()
	var buf []byte
	appendLV := func(b []byte, v []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...)
	}
	for i := range attrs {
		a := &attrs[i]
		buf = buf[:0]
		buf = appendLV(buf, []byte(a.name))
		buf = appendLV(buf, []byte(a.dataType))
		if a.binary {
			buf = append(buf, 2)
			buf = appendLV(buf, a.bin)
		} else {
			buf = append(buf, 1)
			buf = appendLV(buf, []byte(a.str))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Receipt handles encode the queue, the message and the receive they belong
// to; every receive yields a new one.
const receiptHandleLen = 24

func encodeReceiptHandle(queueID, key, nonce uint64) string {
	var raw [receiptHandleLen]byte
	binary.BigEndian.PutUint64(raw[0:], queueID)
	binary.BigEndian.PutUint64(raw[8:], key)
	binary.BigEndian.PutUint64(raw[16:], nonce)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func decodeReceiptHandle(h string) (queueID, key, nonce uint64, ok bool) {
	if base64.RawURLEncoding.DecodedLen(len(h)) != receiptHandleLen {
		return 0, 0, 0, false
	}
	var raw [receiptHandleLen]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], []byte(h))
	if err != nil || n != receiptHandleLen {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(raw[0:]), binary.BigEndian.Uint64(raw[8:]), binary.BigEndian.Uint64(raw[16:]), true
}

// validMessageChars reports whether s holds only the characters SQS accepts in
// a message: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
func validMessageChars(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if (r >= 0xD800 && r <= 0xDFFF) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

const invalidCharsMessage = "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"

// attrValueJSON is a MessageAttributeValue or MessageSystemAttributeValue on
// the wire.
type attrValueJSON struct {
	DataType         *string  `json:"DataType"`
	StringValue      *string  `json:"StringValue"`
	BinaryValue      []byte   `json:"BinaryValue"`
	StringListValues []string `json:"StringListValues"`
	BinaryListValues [][]byte `json:"BinaryListValues"`
}

const maxMessageAttributes = 10

// parseMessageAttributes validates user message attributes as SQS does and
// returns them sorted by name together with their size.
func parseMessageAttributes(in map[string]attrValueJSON) ([]msgAttr, int, *apiError) {
	if len(in) == 0 {
		return nil, 0, nil
	}
	if len(in) > maxMessageAttributes {
		return nil, 0, newError(codeInvalidParameterValue,
			"Number of message attributes [%d] exceeds the allowed maximum [%d].", len(in), maxMessageAttributes)
	}
	attrs := make([]msgAttr, 0, len(in))
	size := 0
	for name, v := range in {
		if err := validateAttrName(name); err != nil {
			return nil, 0, err
		}
		a, err := parseAttrValue(name, v)
		if err != nil {
			return nil, 0, err
		}
		size += len(a.name) + len(a.dataType) + len(a.str) + len(a.bin)
		attrs = append(attrs, a)
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].name < attrs[j].name })
	return attrs, size, nil
}

func validateAttrName(name string) *apiError {
	if name == "" {
		return newError(codeInvalidParameterValue, "The request must contain non-empty message attribute name.")
	}
	if len(name) > 256 {
		return newError(codeInvalidParameterValue, "Message (user) attribute name %s exceeds the maximum allowed length of 256.", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return newError(codeInvalidParameterValue,
				"Message (user) attribute name %s can only contain upper and lower case characters, digits, periods, hyphens and underscores.", name)
		}
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return newError(codeInvalidParameterValue,
			"You can't use message attribute names beginning with 'AWS.' or 'Amazon.'. These strings are reserved for internal use.")
	}
	if name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return newError(codeInvalidParameterValue,
			"Message (user) attribute name %s can't start or end with a period or contain consecutive periods.", name)
	}
	return nil
}

func parseAttrValue(name string, v attrValueJSON) (msgAttr, *apiError) {
	if v.DataType == nil || *v.DataType == "" {
		return msgAttr{}, newError(codeInvalidParameterValue,
			"The message attribute '%s' must contain non-empty message attribute type.", name)
	}
	dt := *v.DataType
	if len(dt) > 256 {
		return msgAttr{}, newError(codeInvalidParameterValue,
			"Message (user) attribute '%s' type must be shorter than 256 bytes.", name)
	}
	base, _, _ := strings.Cut(dt, ".")
	if len(v.StringListValues) > 0 || len(v.BinaryListValues) > 0 {
		return msgAttr{}, newError(codeInvalidParameterValue,
			"Message (user) attribute '%s' uses list values, which SQS does not support.", name)
	}
	a := msgAttr{name: name, dataType: dt}
	switch base {
	case "String", "Number":
		if v.StringValue == nil || *v.StringValue == "" {
			return msgAttr{}, newError(codeInvalidParameterValue,
				"Message (user) attribute '%s' must contain a non-empty value of type '%s'.", name, base)
		}
		a.str = *v.StringValue
		if !validMessageChars(a.str) {
			return msgAttr{}, newError(codeInvalidParameterValue, invalidCharsMessage)
		}
		if base == "Number" && !validNumber(a.str) {
			return msgAttr{}, newError(codeInvalidParameterValue,
				"Can't cast the value of message (user) attribute '%s' to a number.", name)
		}
	case "Binary":
		if len(v.BinaryValue) == 0 {
			return msgAttr{}, newError(codeInvalidParameterValue,
				"Message (user) attribute '%s' must contain a non-empty value of type 'Binary'.", name)
		}
		a.bin = v.BinaryValue
		a.binary = true
	default:
		return msgAttr{}, newError(codeInvalidParameterValue,
			"The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
	}
	return a, nil
}

// validNumber accepts the decimal numbers SQS's Number type accepts: an
// optional sign, digits with an optional fraction and exponent, up to 38
// significant digits.
func validNumber(s string) bool {
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c >= '0' && c <= '9' {
			digits++
		} else if c != '.' && c != '-' && c != '+' {
			return false // rejects "Inf", "NaN", hex floats
		}
	}
	return digits > 0 && digits <= 38
}

// parseSystemAttributes validates MessageSystemAttributes; SQS accepts only
// AWSTraceHeader, of type String.
func parseSystemAttributes(in map[string]attrValueJSON) (trace string, has bool, md5sum string, err *apiError) {
	if len(in) == 0 {
		return "", false, "", nil
	}
	for name, v := range in {
		if name != "AWSTraceHeader" {
			return "", false, "", newError(codeInvalidParameterValue, "Message system attribute name '%s' is invalid.", name)
		}
		if v.DataType == nil || *v.DataType != "String" {
			return "", false, "", newError(codeInvalidParameterValue,
				"Message system attribute '%s' must be of type String.", name)
		}
		if v.StringValue == nil || *v.StringValue == "" {
			return "", false, "", newError(codeInvalidParameterValue,
				"Message system attribute '%s' must contain a non-empty value of type 'String'.", name)
		}
		trace = *v.StringValue
	}
	attr := []msgAttr{{name: "AWSTraceHeader", dataType: "String", str: trace}}
	return trace, true, attributesMD5(attr), nil
}

// validFIFOID reports whether id is a valid MessageGroupId or
// MessageDeduplicationId: 1 to 128 alphanumeric or punctuation characters.
func validFIFOID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func errInvalidFIFOID(value, param string) *apiError {
	return errInvalidValue(value, param, param+" can only include alphanumeric and punctuation characters. 1 to 128 in length.")
}
