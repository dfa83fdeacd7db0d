package samtemplate

import (
	"reflect"
	"strings"
	"testing"
)

const doc = `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Grace:
    Type: Number
    Default: 120
  Stage:
    Type: String
    Default: dev
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 30
    Environment:
      Variables:
        STORE_BUCKET: !Ref Store
        GRACE: !Ref Grace
Resources:
  Store:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-store-${AWS::AccountId}"
  Copy:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub ${AWS::StackName}-copy
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 60
      Environment:
        Variables:
          COPY_QUEUE_URL: !Ref Copy
          COPY_QUEUE_ARN: !GetAtt Copy.Arn
          MODE: !If [IsDev, fast, slow]
          JOINED: !Join ["/", [a, !Ref AWS::Region]]
          LITERAL: !Sub "${!NotAVar}-${Copy.QueueName}"
          GONE: !Ref AWS::NoValue
`

func TestParseAndResolve(t *testing.T) {
	tpl, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(tpl, "feedpipe", "us-east-1", "000000000000", map[string]string{"Grace": "5"})
	name, err := r.String(tpl.Resources["Store"].Properties["BucketName"], "Resources.Store.Properties.BucketName")
	if err != nil || name != "feedpipe-store-000000000000" {
		t.Fatalf("bucket name = %q, %v", name, err)
	}
	r.Refs["Store"] = name
	r.Refs["Copy"] = "http://127.0.0.1:1/000000000000/feedpipe-copy"
	r.Attrs["Copy"] = map[string]string{"Arn": "arn:aws:sqs:us-east-1:000000000000:feedpipe-copy", "QueueName": "feedpipe-copy"}

	props, err := tpl.FunctionProperties("Fn")
	if err != nil {
		t.Fatal(err)
	}
	if props["Timeout"] != 60 || props["Runtime"] != "provided.al2023" {
		t.Errorf("globals merge: Timeout=%v Runtime=%v", props["Timeout"], props["Runtime"])
	}
	env, err := r.Resolve(props["Environment"], "Resources.Fn.Properties.Environment")
	if err != nil {
		t.Fatal(err)
	}
	got := env.(map[string]any)["Variables"]
	want := map[string]any{
		"STORE_BUCKET":   "feedpipe-store-000000000000",
		"GRACE":          "5",
		"COPY_QUEUE_URL": "http://127.0.0.1:1/000000000000/feedpipe-copy",
		"COPY_QUEUE_ARN": "arn:aws:sqs:us-east-1:000000000000:feedpipe-copy",
		"MODE":           "fast",
		"JOINED":         "a/us-east-1",
		"LITERAL":        "${NotAVar}-feedpipe-copy",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("environment:\n got %v\nwant %v", got, want)
	}
}

func TestErrorsNameTheLocation(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"unknown tag":      {"Resources:\n  A:\n    Type: X\n    Properties:\n      P: !Bogus x\n", "Resources.A.Properties.P (line 5): unknown tag !Bogus"},
		"missing type":     {"Resources:\n  A:\n    Properties: {}\n", "Resources.A: missing Type"},
		"unsupported fn":   {"Resources:\n  A:\n    Type: X\n    Properties:\n      P: !ImportValue other\n", "does not support Fn::ImportValue"},
		"unknown ref":      {"Resources:\n  A:\n    Type: X\n    Properties:\n      P: !Ref Nope\n", `Ref to unknown name "Nope"`},
		"unsupported attr": {"Resources:\n  A:\n    Type: AWS::SQS::Queue\n    Properties:\n      P: !GetAtt A.Weird\n", "does not support Fn::GetAtt A.Weird"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tpl, err := Parse([]byte(c.doc))
			if err == nil {
				r := NewResolver(tpl, "s", "us-east-1", "0", nil)
				_, err = r.Resolve(tpl.Resources["A"].Properties, "Resources.A.Properties")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}
