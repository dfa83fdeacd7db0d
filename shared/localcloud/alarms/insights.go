package alarms

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Query is a CloudWatch Metrics Insights query of the form the local
// evaluator runs:
//
//	SELECT FUNC(Metric) FROM SCHEMA("Namespace", dim, …) [WHERE dim = 'value' [AND …]] [GROUP BY dim, …]
//
// (or FROM "Namespace" for every dimension set). With GROUP BY, each group
// is a time series of its own — a contributor of a multi time series alarm.
type Query struct {
	Func      string // AVG, COUNT, MAX, MIN, SUM
	Metric    string
	Namespace string
	// Schema lists the exact dimension keys of the metrics queried; nil for
	// FROM "Namespace", which takes any.
	Schema  []string
	Where   map[string]string
	GroupBy []string
}

var (
	queryRE = regexp.MustCompile(`(?is)^\s*SELECT\s+(AVG|COUNT|MAX|MIN|SUM)\s*\(\s*("[^"]+"|[\w.\-]+)\s*\)\s+FROM\s+(SCHEMA\s*\(([^)]*)\)|"[^"]+"|[\w./\-]+)\s*(?:WHERE\s+(.+?))?\s*(?:GROUP\s+BY\s+(.+?))?\s*$`)
	condRE  = regexp.MustCompile(`(?is)^\s*("[^"]+"|[\w.\-]+)\s*=\s*'([^']*)'\s*$`)
	andRE   = regexp.MustCompile(`(?i)\s+AND\s+`)
	identRE = regexp.MustCompile(`^("[^"]+"|[\w.\-]+)$`)
)

func unquote(s string) string { return strings.Trim(strings.TrimSpace(s), `"`) }

// ParseQuery parses a Metrics Insights query; anything beyond the form above
// (ORDER BY, LIMIT, OR, other operators) is an error, never ignored.
func ParseQuery(s string) (Query, error) {
	m := queryRE.FindStringSubmatch(s)
	if m == nil {
		return Query{}, fmt.Errorf("metrics insights query %q: the local evaluator runs SELECT FUNC(metric) FROM SCHEMA(...) [WHERE d = 'v' AND ...] [GROUP BY ...]", s)
	}
	q := Query{Func: strings.ToUpper(m[1]), Metric: unquote(m[2]), Where: map[string]string{}}
	if m[4] != "" || strings.HasPrefix(strings.ToUpper(m[3]), "SCHEMA") {
		parts := strings.Split(m[4], ",")
		q.Namespace = unquote(parts[0])
		q.Schema = []string{}
		for _, p := range parts[1:] {
			q.Schema = append(q.Schema, unquote(p))
		}
	} else {
		q.Namespace = unquote(m[3])
	}
	if m[5] != "" {
		for _, c := range andRE.Split(m[5], -1) {
			cm := condRE.FindStringSubmatch(c)
			if cm == nil {
				return Query{}, fmt.Errorf("metrics insights query %q: condition %q: the local evaluator runs dim = 'value' joined by AND", s, c)
			}
			q.Where[unquote(cm[1])] = cm[2]
		}
	}
	if m[6] != "" {
		for _, g := range strings.Split(m[6], ",") {
			if !identRE.MatchString(strings.TrimSpace(g)) {
				return Query{}, fmt.Errorf("metrics insights query %q: GROUP BY %q: the local evaluator runs GROUP BY dimension names only (no ORDER BY or LIMIT)", s, strings.TrimSpace(g))
			}
			q.GroupBy = append(q.GroupBy, unquote(g))
		}
	}
	if q.Namespace == "" {
		return Query{}, fmt.Errorf("metrics insights query %q: no namespace", s)
	}
	return q, nil
}

// matches reports whether a series belongs to the query.
func (q Query) matches(sr *series) bool {
	if sr.namespace != q.Namespace || sr.name != q.Metric {
		return false
	}
	if q.Schema != nil {
		if len(sr.dims) != len(q.Schema) {
			return false
		}
		for _, d := range q.Schema {
			if _, ok := sr.dims[d]; !ok {
				return false
			}
		}
	}
	for k, v := range q.Where {
		if sr.dims[k] != v {
			return false
		}
	}
	for _, g := range q.GroupBy {
		if _, ok := sr.dims[g]; !ok {
			return false
		}
	}
	return true
}

// label names a series' group: "site=shop, destination=erp".
func (q Query) label(sr *series) string {
	parts := make([]string, len(q.GroupBy))
	for i, g := range q.GroupBy {
		parts[i] = g + "=" + sr.dims[g]
	}
	return strings.Join(parts, ", ")
}

// Groups returns the labels of the query's time series that have any
// datapoint, sorted.
func (m *Metrics) Groups(q Query) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for _, sr := range m.series {
		if q.matches(sr) {
			seen[q.label(sr)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// QueryStatistic computes the query's function over the datapoints of the
// group labelled label in [from, to), and false when there are none.
func (m *Metrics) QueryStatistic(q Query, label string, from, to time.Time) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var group []*series
	for _, sr := range m.series {
		if q.matches(sr) && q.label(sr) == label {
			group = append(group, sr)
		}
	}
	return statistic(group, q.Func, from, to)
}
