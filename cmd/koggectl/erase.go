package main

import (
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// eraseCmd runs "koggectl erase --record ID | --reference REF".
func eraseCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, af := newAdminFlagSet("erase", stderr, getenv)
	record := fs.String("record", "", "the id of the record to erase")
	reference := fs.String("reference", "", "the procedure's reference number whose records to erase")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if (*record == "") == (*reference == "") {
		return usageErrorf("give either --record ID or --reference REF")
	}
	c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var res client.Erasure
	if *record != "" {
		id, err := uuid.Parse(*record)
		if err != nil {
			return usageErrorf("--record %q is not a record id (a UUID)", *record)
		}
		res, err = cl.EraseRecord(ctx, id)
		if err != nil {
			return err
		}
	} else if res, err = cl.EraseReference(ctx, *reference); err != nil {
		return err
	}
	if c.flags.json {
		if res.Records == nil {
			res.Records = []client.ErasedRecord{}
		}
		return c.printJSON(res)
	}
	if len(res.Records) == 0 {
		_, err = fmt.Fprintln(c.stdout, "No such record is stored; nothing to erase. The request is in the audit log.")
		return err
	}
	t := newTable(c.stdout, "RECORD", "DEVICE", "RESULT")
	for _, r := range res.Records {
		result := "body and blobs deleted now"
		if !r.Erased {
			result = "held nothing any more (accepted or deleted before)"
		}
		t.row(r.ID.String(), r.Device, result)
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d of %d record(s) erased; the devices are told; every step is in the audit log.\n", res.Erased, len(res.Records))
	return err
}
