package logging

import (
	"log/slog"
	"testing"
)

func TestLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, "WARN": slog.LevelWarn, " error ": slog.LevelError} {
		if got, ok := Level(in); !ok || got != want {
			t.Errorf("Level(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := Level("loud"); ok {
		t.Error("an unknown level was accepted")
	}
}
