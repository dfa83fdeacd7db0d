package e2e

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/feedpipe/feedpipe/shared/layout"
	"github.com/feedpipe/feedpipe/shared/localcloud/alarms"
	"github.com/feedpipe/feedpipe/shared/metrics"
	"github.com/feedpipe/feedpipe/shared/samtemplate"
)

// envNames maps the layout.Env* identifiers the mains use to their values.
var envNames = map[string]string{
	"EnvIncomingBucket": layout.EnvIncomingBucket,
	"EnvStoreBucket":    layout.EnvStoreBucket,
	"EnvCopyQueueURL":   layout.EnvCopyQueueURL,
	"EnvImportQueueURL": layout.EnvImportQueueURL,
	"EnvSyncQueueURL":   layout.EnvSyncQueueURL,
	"EnvStackName":      layout.EnvStackName,
}

const tmplStack = "tmplcheck"

func loadTemplate(t *testing.T) (*samtemplate.Template, *samtemplate.Resolver) {
	t.Helper()
	tmpl, err := samtemplate.Load("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, samtemplate.NewResolver(tmpl, tmplStack, "us-east-1", "000000000000", nil)
}

// queueRoles maps each queue resource of the template to its layout role.
var queueRoles = map[string]string{
	"CopyQueue":             layout.CopyQueue,
	"CopyDeadLetterQueue":   layout.CopyDLQ,
	"ImportQueue":           layout.ImportQueue,
	"ImportDeadLetterQueue": layout.ImportDLQ,
	"SyncQueue":             layout.SyncQueue,
	"SyncDeadLetterQueue":   layout.SyncDLQ,
}

func TestTemplateQueuesFollowLayout(t *testing.T) {
	tmpl, r := loadTemplate(t)
	queues := tmpl.ResourcesOfType("AWS::SQS::Queue")
	sort.Strings(queues)
	for _, q := range queues {
		role, ok := queueRoles[q]
		if !ok {
			t.Errorf("queue %s has no layout role", q)
			continue
		}
		name, err := r.String(tmpl.Resources[q].Properties["QueueName"], q+".QueueName")
		if err != nil {
			t.Fatal(err)
		}
		if want := layout.QueueName(tmplStack, role); name != want {
			t.Errorf("%s is named %q, layout says %q", q, name, want)
		}
		fifo := tmpl.Resources[q].Properties["FifoQueue"] == true
		if fifo != strings.HasSuffix(role, ".fifo") {
			t.Errorf("%s: FifoQueue %v for role %q", q, fifo, role)
		}
	}
	for q := range queueRoles {
		if !slices.Contains(queues, q) {
			t.Errorf("layout role of %s has no queue in the template", q)
		}
	}
}

func TestTemplateIncomingNotification(t *testing.T) {
	tmpl, r := loadTemplate(t)
	cfg := asMap(asMap(tmpl.Resources["IncomingBucket"].Properties)["NotificationConfiguration"])
	qcs, _ := cfg["QueueConfigurations"].([]any)
	if len(qcs) != 1 {
		t.Fatalf("incoming bucket has %d queue notifications, want 1", len(qcs))
	}
	qc := asMap(qcs[0])
	if ev, _ := qc["Event"].(string); !strings.HasPrefix(ev, "s3:ObjectCreated:") {
		t.Errorf("notification event %q, want s3:ObjectCreated:*", ev)
	}
	if ga := asMap(qc["Queue"])["Fn::GetAtt"]; fmt.Sprint(ga) != fmt.Sprint([]any{"CopyQueue", "Arn"}) {
		t.Errorf("notification targets %v, want the copy queue", qc["Queue"])
	}
	rules, _ := asMap(asMap(qc["Filter"])["S3Key"])["Rules"].([]any)
	var prefix string
	for _, rule := range rules {
		if m := asMap(rule); strings.EqualFold(fmt.Sprint(m["Name"]), "prefix") {
			prefix, _ = r.String(m["Value"], "IncomingBucket.Filter.prefix")
		}
	}
	if prefix != layout.IncomingPrefix() {
		t.Errorf("notification prefix %q, want layout.IncomingPrefix() %q", prefix, layout.IncomingPrefix())
	}
}

var (
	requireEnvRE = regexp.MustCompile(`layout\.RequireEnv\(([^)]*)\)`)
	envIdentRE   = regexp.MustCompile(`layout\.(Env\w+)`)
	getenvRE     = regexp.MustCompile(`(?:os\.Getenv|layout\.EnvInt|layout\.EnvSeconds)\("([A-Z0-9_]+)"`)
)

// requiredEnv reads a function's main.go for the variables it reads: the
// arguments of layout.RequireEnv and every os.Getenv, layout.EnvInt and
// layout.EnvSeconds.
func requiredEnv(t *testing.T, dir string) []string {
	t.Helper()
	src, err := os.ReadFile("../functions/" + dir + "/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, call := range requireEnvRE.FindAllStringSubmatch(string(src), -1) {
		for _, id := range envIdentRE.FindAllStringSubmatch(call[1], -1) {
			name, ok := envNames[id[1]]
			if !ok {
				t.Fatalf("%s/main.go requires layout.%s, unknown to this test", dir, id[1])
			}
			out = append(out, name)
		}
	}
	for _, m := range getenvRE.FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("%s/main.go reads no environment variables; the parsing here is out of date", dir)
	}
	return out
}

func TestTemplateFunctionEnvironment(t *testing.T) {
	tmpl, r := loadTemplate(t)
	for fn, dir := range map[string]string{"UploadFunction": "upload", "CopyFunction": "copy", "ImportFunction": "import", "SyncFunction": "sync"} {
		props, err := tmpl.FunctionProperties(fn)
		if err != nil {
			t.Fatal(err)
		}
		vars := asMap(asMap(props["Environment"])["Variables"])
		for _, name := range requiredEnv(t, dir) {
			v, ok := vars[name]
			if !ok {
				t.Errorf("%s: main.go reads %s, the template does not set it", fn, name)
				continue
			}
			if _, err := r.String(v, fn+"."+name); err != nil && !strings.Contains(err.Error(), "resource") {
				t.Errorf("%s: %s does not resolve: %v", fn, name, err)
			}
		}
	}
}

func TestTemplateTimeoutsAndRedrive(t *testing.T) {
	tmpl, r := loadTemplate(t)
	num := func(v any, path string) int {
		t.Helper()
		s, err := r.String(v, path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %q is not a number", path, s)
		}
		return n
	}
	for fn, q := range map[string]string{"ImportFunction": "ImportQueue", "CopyFunction": "CopyQueue"} {
		props, err := tmpl.FunctionProperties(fn)
		if err != nil {
			t.Fatal(err)
		}
		timeout := num(props["Timeout"], fn+".Timeout")
		vis := num(tmpl.Resources[q].Properties["VisibilityTimeout"], q+".VisibilityTimeout")
		if vis < 6*timeout {
			t.Errorf("%s visibility timeout %d s < 6 × %s timeout %d s", q, vis, fn, timeout)
		}
	}
	redrive := asMap(tmpl.Resources["ImportQueue"].Properties["RedrivePolicy"])
	maxReceive := num(redrive["maxReceiveCount"], "ImportQueue.RedrivePolicy.maxReceiveCount")
	budget := num(tmpl.Parameters["ImportRetryBudget"].Default, "ImportRetryBudget.Default")
	if maxReceive < 10*budget {
		t.Errorf("import queue maxReceiveCount %d < 10 × retry budget %d: a DLQ could skip a delta", maxReceive, budget)
	}
}

// The LocalStack init script must create every queue and bucket of the
// template, with the template's names for the stack "feedpipe".
func TestLocalStackInitCreatesTemplateResources(t *testing.T) {
	tmpl, r := loadTemplate(t)
	script, err := os.ReadFile("../localstack/init/ready.d/00-feedpipe.sh")
	if err != nil {
		t.Fatal(err)
	}
	r = samtemplate.NewResolver(tmpl, "feedpipe", "us-east-1", "000000000000", nil)
	var missing []string
	var named []string
	named = append(named, tmpl.ResourcesOfType("AWS::SQS::Queue")...)
	named = append(named, tmpl.ResourcesOfType("AWS::S3::Bucket")...)
	for _, q := range named {
		prop := "QueueName"
		if tmpl.Resources[q].Type == "AWS::S3::Bucket" {
			prop = "BucketName"
		}
		name, err := r.String(tmpl.Resources[q].Properties[prop], q+"."+prop)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s*$`).Match(script) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("localstack/init/ready.d/00-feedpipe.sh does not create %v", missing)
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// metricConsts reads shared/metrics/names.go for its string constants:
// identifier → value.
func metricConsts(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../shared/metrics/names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[name.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("shared/metrics/names.go declares no string constants; the parsing here is out of date")
	}
	return out
}

// emittedMetrics reads each function's non-test sources: the function name
// its main.go gives metrics.New, and the metric names (shared/metrics
// constants) its code refers to. It returns function → metric names.
func emittedMetrics(t *testing.T, consts map[string]string) map[string]map[string]bool {
	t.Helper()
	dirs, err := filepath.Glob("../functions/*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		function := ""
		names := map[string]bool{}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && isPkg(sel.X, "metrics") && sel.Sel.Name == "New" && len(n.Args) >= 3 {
						if lit, ok := n.Args[2].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							function, _ = strconv.Unquote(lit.Value)
						}
					}
				case *ast.SelectorExpr:
					if v, ok := consts[n.Sel.Name]; ok && isPkg(n.X, "metrics") && ast.IsExported(n.Sel.Name) && !strings.HasPrefix(n.Sel.Name, "Dim") {
						names[v] = true
					}
				}
				return true
			})
		}
		if function != "" {
			out[function] = names
		}
	}
	if len(out) == 0 {
		t.Fatal("no function creates a metrics.Emitter; the parsing here is out of date")
	}
	return out
}

func isPkg(x ast.Expr, name string) bool {
	id, ok := x.(*ast.Ident)
	return ok && id.Name == name
}

// TestTemplateAlarmsNameEmittedMetrics checks that every alarm on a feedpipe
// metric names a metric the function in its dimensions emits, with
// dimensions the emitter writes: an alarm on a name nobody emits would
// never fire.
func TestTemplateAlarmsNameEmittedMetrics(t *testing.T) {
	tmpl, r := loadTemplate(t)
	consts := metricConsts(t)
	emitted := emittedMetrics(t, consts)
	dimKeys := map[string]bool{metrics.DimFunction: true, metrics.DimSite: true, metrics.DimDestination: true}
	ids := tmpl.ResourcesOfType("AWS::CloudWatch::Alarm")
	sort.Strings(ids)
	custom := 0
	for _, id := range ids {
		props := tmpl.Resources[id].Properties
		if props["Metrics"] != nil {
			// A Metrics Insights alarm: its query names the metric.
			list, _ := props["Metrics"].([]any)
			if len(list) != 1 {
				t.Errorf("%s: want one Metrics entry", id)
				continue
			}
			expr, _ := asMap(list[0])["Expression"].(string)
			q, err := alarms.ParseQuery(expr)
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
			if q.Namespace != metrics.Namespace {
				t.Errorf("%s: namespace %q; feedpipe's metrics are in %q", id, q.Namespace, metrics.Namespace)
			}
			for _, k := range append(append(slices.Clone(q.Schema), q.GroupBy...), slices.Collect(maps.Keys(q.Where))...) {
				if !dimKeys[k] {
					t.Errorf("%s: dimension %q is not one the functions emit", id, k)
				}
			}
			anyEmits := false
			for _, names := range emitted {
				anyEmits = anyEmits || names[q.Metric]
			}
			if !anyEmits {
				t.Errorf("%s: no function emits %s", id, q.Metric)
			}
			custom++
			continue
		}
		ns, err := r.String(props["Namespace"], id+".Namespace")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ns, "AWS/") {
			continue
		}
		if ns != metrics.Namespace {
			t.Errorf("%s: namespace %q; feedpipe's metrics are in %q", id, ns, metrics.Namespace)
			continue
		}
		custom++
		name, err := r.String(props["MetricName"], id+".MetricName")
		if err != nil {
			t.Fatal(err)
		}
		function := ""
		dims, _ := props["Dimensions"].([]any)
		for _, d := range dims {
			k, _ := asMap(d)["Name"].(string)
			v, _ := asMap(d)["Value"].(string)
			if !dimKeys[k] {
				t.Errorf("%s: dimension %q is not one the functions emit", id, k)
			}
			if k == metrics.DimFunction {
				function = v
			}
		}
		if function == "" {
			t.Errorf("%s: no %q dimension; every feedpipe metric is published per function", id, metrics.DimFunction)
			continue
		}
		names, ok := emitted[function]
		if !ok {
			t.Errorf("%s: function %q emits no metrics", id, function)
			continue
		}
		if !names[name] {
			t.Errorf("%s: metric %s is not emitted by the %s function", id, name, function)
		}
	}
	if custom == 0 {
		t.Error("template.yaml has no alarm on a feedpipe metric")
	}
}

// The sync function has a second schedule whose Input asks it to collect,
// the same Input as the sample event, and a collect grace longer than the
// longest import.
func TestTemplateCollectSchedule(t *testing.T) {
	tmpl, r := loadTemplate(t)
	props, err := tmpl.FunctionProperties("SyncFunction")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../events/sync/collect.json")
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for name, ev := range asMap(props["Events"]) {
		e := asMap(ev)
		p := asMap(e["Properties"])
		in, ok := p["Input"].(string)
		if e["Type"] != "Schedule" || !ok {
			continue
		}
		inputs = append(inputs, in)
		if !jsonEqualStrings(t, in, string(sample)) {
			t.Errorf("SyncFunction.Events.%s.Input %s, events/sync/collect.json %s", name, in, sample)
		}
		expr, err := r.String(p["Schedule"], "SyncFunction.Events."+name+".Schedule")
		if err != nil || !strings.HasPrefix(expr, "rate(") {
			t.Errorf("SyncFunction.Events.%s.Schedule = %q, %v", name, expr, err)
		}
	}
	if len(inputs) != 1 {
		t.Fatalf("SyncFunction has %d schedules with an Input, want the collect one", len(inputs))
	}
	vars := asMap(asMap(props["Environment"])["Variables"])
	grace, err := r.String(vars["COLLECT_GRACE_SECONDS"], "SyncFunction.COLLECT_GRACE_SECONDS")
	if err != nil {
		t.Fatal(err)
	}
	importProps, err := tmpl.FunctionProperties("ImportFunction")
	if err != nil {
		t.Fatal(err)
	}
	timeout, err := r.String(importProps["Timeout"], "ImportFunction.Timeout")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := strconv.Atoi(grace)
	to, _ := strconv.Atoi(timeout)
	if to == 0 || g <= to {
		t.Errorf("COLLECT_GRACE_SECONDS %q must exceed the import function's Timeout %q", grace, timeout)
	}
}

func jsonEqualStrings(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}
