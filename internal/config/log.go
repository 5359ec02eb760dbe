package config

import (
	"fmt"
	"io"
	"log/slog"
)

// Log is the logging section the commands share: level and format.
type Log struct {
	Level  string `config:"level" usage:"log level: debug, info, warn, error"`
	Format string `config:"format" usage:"log format: text or json"`
}

// Validate checks the level and the format.
func (l Log) Validate() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return fmt.Errorf("log.level %q: want debug, info, warn or error", l.Level)
	}
	if l.Format != "json" && l.Format != "text" {
		return fmt.Errorf("log.format %q: want text or json", l.Format)
	}
	return nil
}

// Logger returns the logger the settings ask for, writing to w.
func (l Log) Logger(w io.Writer) (*slog.Logger, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	var level slog.Level
	level.UnmarshalText([]byte(l.Level)) // checked by Validate
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
