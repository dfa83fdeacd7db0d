// Package logging builds the functions' logger: JSON lines on stdout (where
// Lambda collects them), at the level LOG_LEVEL names, each line carrying
// the function's name.
package logging

import (
	"log/slog"
	"os"
	"strings"
)

// New returns the logger of a function. LOG_LEVEL is DEBUG, INFO, WARN or
// ERROR (default INFO; an unknown value logs at INFO and says so).
func New(function string) *slog.Logger {
	level, ok := Level(os.Getenv("LOG_LEVEL"))
	l := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("function", function)
	if !ok {
		l.Warn("unknown LOG_LEVEL; logging at INFO", "LOG_LEVEL", os.Getenv("LOG_LEVEL"))
	}
	return l
}

// Level parses a LOG_LEVEL value; ok is false for a value it does not know.
func Level(s string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "", "INFO":
		return slog.LevelInfo, true
	case "WARN", "WARNING":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}
