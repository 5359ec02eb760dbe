package main

import (
	"context"
	"log/slog"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/ui"
)

// runUI runs the touch UI on this (the main) goroutine until its window
// closes or ctx ends.
func runUI(ctx context.Context, app *mobileagent.App, cfg UIConfig, log *slog.Logger) error {
	fa := fyneapp.NewWithID("org.kogge.mobile")
	u, err := ui.New(fa, app, ui.Options{Lang: cfg.Lang, Windowed: cfg.Windowed, Logger: log.With("component", "ui")})
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { fyne.Do(fa.Quit) })
	defer stop()
	log.Info("kogge-mobile running with the touch UI")
	u.ShowAndRun()
	return nil
}
