package runner

import (
	"strings"
	"testing"
	"time"
)

func TestParseExpression(t *testing.T) {
	base := time.Date(2026, 11, 24, 10, 7, 30, 0, time.UTC) // a Tuesday
	cases := []struct {
		expr string
		next time.Time
		err  string
	}{
		{expr: "rate(5 minutes)", next: base.Add(5 * time.Minute)},
		{expr: "rate(1 hour)", next: base.Add(time.Hour)},
		{expr: "rate(10 seconds)", next: base.Add(10 * time.Second)},
		{expr: "rate(1 minutes)", err: "use \"minute\" for 1"},
		{expr: "rate(2 minute)", err: "the plural"},
		{expr: "cron(0/15 * * * ? *)", next: time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)},
		{expr: "cron(0 12 ? * 2 *)", next: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}, // 2 = Monday
		{expr: "cron(0 12 ? * MON-FRI *)", next: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)},
		{expr: "cron(0 8 1 * ? *)", next: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{expr: "cron(0 8 * * * *)", err: "exactly one of day-of-month and day-of-week"},
		{expr: "cron(0 8 L * ? *)", err: "L, W and #"},
		{expr: "cron(0 8 * * ? 2027)", err: "year field"},
		{expr: "cron(0 8 * *)", err: "6 fields"},
		{expr: "every 5 minutes", err: "want rate"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			e, err := ParseExpression(c.expr, nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Next(base); !got.Equal(c.next) {
				t.Fatalf("Next = %v, want %v", got, c.next)
			}
		})
	}
}

func TestParseExpressionTimeZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database")
	}
	e, err := ParseExpression("cron(0 9 * * ? *)", berlin)
	if err != nil {
		t.Fatal(err)
	}
	got := e.Next(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("09:00 Berlin = %v UTC, want %v", got.UTC(), want)
	}
}
