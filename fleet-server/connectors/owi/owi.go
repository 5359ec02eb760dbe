// Package owi delivers enforcement notices (enforcement.notice) to the OWi
// procedure (the fine office's case system), as Kogge's case record in XML
// or JSON, or in a vendor format through an Adapter, to a drop directory or
// over HTTPS.
//
// Idempotency is the record id: the drop directory's file is named by it
// (see package dropdir), and over HTTPS it is the Idempotency-Key header
// (see package webhook, whose client this connector uses).
package owi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
)

// Adapter renders the case record in the format a procedure imports. Vendor
// formats are adapters; Kogge's own are XMLAdapter and JSONAdapter.
type Adapter interface {
	// Name identifies the adapter in configuration.
	Name() string
	// Ext is the file extension in a drop directory, with the dot.
	Ext() string
	// ContentType is the media type over HTTPS.
	ContentType() string
	// Render returns the document. An error is permanent: the record does
	// not fit the format.
	Render(r *CaseRecord) ([]byte, error)
}

// XMLAdapter renders Kogge's case record as XML (the default).
type XMLAdapter struct{}

func (XMLAdapter) Name() string        { return "kogge-xml" }
func (XMLAdapter) Ext() string         { return ".xml" }
func (XMLAdapter) ContentType() string { return "application/xml" }
func (XMLAdapter) Render(r *CaseRecord) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("render case record XML: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// JSONAdapter renders Kogge's case record as JSON.
type JSONAdapter struct{}

func (JSONAdapter) Name() string        { return "kogge-json" }
func (JSONAdapter) Ext() string         { return ".json" }
func (JSONAdapter) ContentType() string { return "application/json" }
func (JSONAdapter) Render(r *CaseRecord) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render case record JSON: %w", err)
	}
	return append(b, '\n'), nil
}

// CSVAdapter is an example vendor adapter: one semicolon-separated line
// under a header line, CRLF line ends, as many older fine-office systems
// import. Several offences are joined with "|"; photos follow as
// base64 columns photo1, photo2, ….
type CSVAdapter struct{}

// csvColumns returns the fixed columns of CSVAdapter.
func csvColumns() []string {
	return []string{
		"record_id", "notice_no", "plate", "nationality", "make", "colour", "street", "house_no", "postal_code", "city",
		"lat", "lon", "observed_from", "observed_to", "tbnr", "circumstances", "valves", "officer", "amount_cents",
		"sanction", "payment_ref", "voided", "void_reason",
	}
}

func (CSVAdapter) Name() string        { return "csv-example" }
func (CSVAdapter) Ext() string         { return ".csv" }
func (CSVAdapter) ContentType() string { return "text/csv; charset=utf-8" }
func (CSVAdapter) Render(r *CaseRecord) ([]byte, error) {
	n := &r.Notice
	coord := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', 6, 64)
	}
	var valves []string
	for _, v := range n.Valves {
		valves = append(valves, fmt.Sprintf("%s%02d", v.Wheel, v.Hour))
	}
	row := []string{
		r.RecordID, n.Number, n.Vehicle.Plate, n.Vehicle.Nationality, n.Vehicle.Make, n.Vehicle.Colour,
		n.Location.Street, n.Location.HouseNumber, n.Location.PostalCode, n.Location.City,
		coord(n.Location.Lat), coord(n.Location.Lon), n.Observation.From, n.Observation.To,
		strings.Join(n.Offences, "|"), strings.Join(n.Circumstances, "|"), strings.Join(valves, "|"), n.Officer,
		strconv.FormatInt(n.AmountCents, 10), n.Sanction, n.PaymentRef, strconv.FormatBool(n.Voided), n.VoidReason,
	}
	header := csvColumns()
	for i, p := range n.Photos {
		header = append(header, "photo"+strconv.Itoa(i+1))
		data, _ := p.Data.MarshalText()
		row = append(row, string(data))
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Comma = ';'
	w.UseCRLF = true
	w.Write(header)
	w.Write(row)
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("render case record CSV: %w", err)
	}
	return buf.Bytes(), nil
}

// Adapters returns the built-in adapters by name.
func Adapters() map[string]Adapter {
	m := map[string]Adapter{}
	for _, a := range []Adapter{XMLAdapter{}, JSONAdapter{}, CSVAdapter{}} {
		m[a.Name()] = a
	}
	return m
}

// AdapterNames lists the built-in adapters' names.
func AdapterNames() []string {
	var names []string
	for n := range Adapters() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Transports.
const (
	TransportDropDir = "dropdir"
	TransportHTTPS   = "https"
)

// Config configures the owi connector.
type Config struct {
	// Adapter renders the record; default XMLAdapter.
	Adapter Adapter
	// Transport is dropdir (default) or https.
	Transport string
	// Drop configures the drop directory; its Ext follows the adapter.
	Drop dropdir.Config
	// HTTPS configures the HTTPS client.
	HTTPS webhook.ClientConfig
}

// Connector delivers notices to the OWi procedure.
type Connector struct {
	adapter Adapter
	drop    *dropdir.Dir
	client  *webhook.Client
}

var _ bridge.Connector = (*Connector)(nil)

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.Adapter == nil {
		cfg.Adapter = XMLAdapter{}
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportDropDir
	}
	c := &Connector{adapter: cfg.Adapter}
	var err error
	switch cfg.Transport {
	case TransportDropDir:
		cfg.Drop.Ext = cfg.Adapter.Ext()
		c.drop, err = dropdir.New(cfg.Drop)
	case TransportHTTPS:
		c.client, err = webhook.NewClient(cfg.HTTPS)
	default:
		err = fmt.Errorf("transport %q, want dropdir or https", cfg.Transport)
	}
	if err != nil {
		return nil, fmt.Errorf("owi: %w", err)
	}
	return c, nil
}

// Close releases idle connections.
func (c *Connector) Close() {
	if c.client != nil {
		c.client.Close()
	}
}

// Deliver renders the notice with the adapter and hands it over.
func (c *Connector) Deliver(ctx context.Context, cs *bridge.Case) (bridge.Receipt, error) {
	r, err := Build(cs)
	if err != nil {
		return bridge.Receipt{}, fmt.Errorf("owi: %w", err)
	}
	body, err := c.adapter.Render(r)
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("owi: adapter %s: %w", c.adapter.Name(), err))
	}
	defer clear(body)
	var rc bridge.Receipt
	if c.drop != nil {
		rc, err = c.drop.Deliver(ctx, cs.ID.String(), body)
	} else {
		rc, err = c.client.Post(ctx, cs.ID.String(), c.adapter.ContentType(), body)
	}
	if err != nil {
		return rc, fmt.Errorf("owi: %w", err)
	}
	return rc, nil
}
