package photo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
)

// Options tune the processing. The zero value means the defaults.
type Options struct {
	// MaxBytes bounds the input (32 MiB).
	MaxBytes int
	// MaxPixels bounds the input's width × height (50 megapixels), checked
	// before the pixels are decoded.
	MaxPixels int
	// MaxSide bounds the longer side of the private copy (4096 px); larger
	// photos are scaled down.
	MaxSide int
	// PublicMaxSide bounds the longer side of the public copy (1600 px).
	PublicMaxSide int
	// Quality and PublicQuality are the JPEG qualities (90 and 85).
	Quality, PublicQuality int
	// FaceMargin is how much a face box grows on each side, as a share of
	// its size, for hair and ears (0.3; twice that upwards). PlateMargin
	// is the same for plates (0.1).
	FaceMargin, PlateMargin float64
	// FaceCells is how many redaction cells span the shorter side of a
	// face region (5); PlateCells the height of a plate region (2).
	FaceCells, PlateCells int
	// MinCell is the smallest redaction cell in pixels (8).
	MinCell int
	// Noise is the random offset of each redaction cell's colour, up to ±
	// this many levels per channel (24).
	Noise int
}

// Defaults of Options.
const (
	DefaultMaxBytes      = 32 << 20
	DefaultMaxPixels     = 50_000_000
	DefaultMaxSide       = 4096
	DefaultPublicMaxSide = 1600
)

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxBytes, DefaultMaxBytes)
	def(&o.MaxPixels, DefaultMaxPixels)
	def(&o.MaxSide, DefaultMaxSide)
	def(&o.PublicMaxSide, DefaultPublicMaxSide)
	def(&o.Quality, 90)
	def(&o.PublicQuality, 85)
	def(&o.FaceCells, 5)
	def(&o.PlateCells, 2)
	def(&o.MinCell, 8)
	def(&o.Noise, 24)
	if o.FaceMargin == 0 {
		o.FaceMargin = 0.3
	}
	if o.PlateMargin == 0 {
		o.PlateMargin = 0.1
	}
	return o
}

// Validate checks the options; zero values are valid (the defaults).
func (o Options) Validate() error {
	d := o.withDefaults()
	var errs []error
	if d.MaxBytes < 0 || d.MaxPixels < 0 {
		errs = append(errs, errors.New("input limits must not be negative"))
	}
	if d.MaxSide < 64 || d.PublicMaxSide < 64 {
		errs = append(errs, fmt.Errorf("sides %d and %d px: want at least 64", d.MaxSide, d.PublicMaxSide))
	}
	if d.Quality < 1 || d.Quality > 100 || d.PublicQuality < 1 || d.PublicQuality > 100 {
		errs = append(errs, fmt.Errorf("JPEG qualities %d and %d: want 1 to 100", d.Quality, d.PublicQuality))
	}
	if d.FaceMargin < 0 || d.FaceMargin > 2 || d.PlateMargin < 0 || d.PlateMargin > 2 {
		errs = append(errs, errors.New("margins: want 0 to 2"))
	}
	if d.FaceCells < 1 || d.FaceCells > 16 || d.PlateCells < 1 || d.PlateCells > 8 {
		errs = append(errs, fmt.Errorf("redaction cells %d (face) and %d (plate): want 1 to 16 and 1 to 8 — more cells keep more detail", d.FaceCells, d.PlateCells))
	}
	if d.MinCell < 4 || d.Noise < 0 || d.Noise > 128 {
		errs = append(errs, fmt.Errorf("minimum cell %d px (want at least 4) or noise %d (want 0 to 128)", d.MinCell, d.Noise))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("photo options: %w", err)
	}
	return nil
}

// Errors of the decoder. A camera image that gives one of them cannot be
// used: take the photo again.
var (
	ErrFormat   = errors.New("not a JPEG or PNG image")
	ErrTooLarge = errors.New("image too large")
)

// Formats of input images.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
)

// Decode reads a JPEG or PNG image from the camera, within the limits of
// opts, and returns its pixels turned upright: when a JPEG's EXIF block
// says it is stored rotated or mirrored, that is applied. Nothing of the
// file's metadata survives in the returned image. A PNG is taken as
// stored (cameras write orientation only into JPEG EXIF). Transparent PNG
// pixels are laid on white.
func (o Options) Decode(data []byte) (*image.RGBA, string, error) {
	o = o.withDefaults()
	if len(data) > o.MaxBytes {
		return nil, "", fmt.Errorf("decode photo: %w: %d bytes, at most %d", ErrTooLarge, len(data), o.MaxBytes)
	}
	var format string
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		format = FormatJPEG
	case len(data) >= 8 && string(data[:8]) == "\x89PNG\r\n\x1a\n":
		format = FormatPNG
	default:
		return nil, "", fmt.Errorf("decode photo: %w", ErrFormat)
	}
	var (
		cfg image.Config
		err error
	)
	if format == FormatJPEG {
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	} else {
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return nil, "", fmt.Errorf("decode photo: %s header: %w", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > o.MaxPixels/max(cfg.Height, 1) {
		return nil, "", fmt.Errorf("decode photo: %w: %d×%d pixels, at most %d in all", ErrTooLarge, cfg.Width, cfg.Height, o.MaxPixels)
	}
	var img image.Image
	if format == FormatJPEG {
		img, err = jpeg.Decode(bytes.NewReader(data))
	} else {
		img, err = png.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, "", fmt.Errorf("decode photo: %s: %w", format, err)
	}
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if format == FormatPNG && !opaque(img) {
		draw.Draw(rgba, rgba.Rect, image.NewUniform(color.White), image.Point{}, draw.Src)
		draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Over)
	} else {
		draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	}
	if format == FormatJPEG {
		rgba = orient(rgba, Orientation(data))
	}
	return rgba, format, nil
}

func opaque(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	return false
}

// Encode writes img as a baseline JPEG of the given quality. Go's encoder
// writes only the segments an image needs (quantisation and Huffman tables,
// frame, scan): no JFIF, EXIF, XMP, ICC profile or comment. Encode checks
// its output for metadata all the same.
func Encode(img image.Image, quality int) ([]byte, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("encode photo: %w", err)
	}
	out := buf.Bytes()
	md, err := Metadata(out)
	if err != nil {
		return nil, fmt.Errorf("encode photo: check the output: %w", err)
	}
	if len(md) > 0 {
		return nil, fmt.Errorf("encode photo: the output carries metadata %v", md)
	}
	return out, nil
}

// Processor turns camera photos into the two copies a report carries.
// It is safe for concurrent use.
type Processor struct {
	faces  FaceFinder
	plates PlateFinder
	opts   Options
}

// NewProcessor returns a processor that blurs what faces and plates find
// in the public copies. Both finders are required: a public copy is never
// made without looking for faces and plates.
func NewProcessor(faces FaceFinder, plates PlateFinder, opts Options) (*Processor, error) {
	if faces == nil || plates == nil {
		return nil, errors.New("photo: a face finder and a plate finder are required")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Processor{faces: faces, plates: plates, opts: opts.withDefaults()}, nil
}

// Result is a processed photo.
type Result struct {
	// Private is the photo for the office: upright, at most MaxSide,
	// re-encoded as JPEG without any metadata (no EXIF, so no GPS, camera
	// serial or time stamp of the file).
	Private []byte
	// Public is the copy that may be published: like Private, scaled to at
	// most PublicMaxSide, with faces and plates made unrecognisable.
	Public []byte
	// Width and Height are the private copy's size; PublicWidth and
	// PublicHeight the public copy's.
	Width, Height             int
	PublicWidth, PublicHeight int
	// Redacted are the public copy's changed rectangles; Faces and Plates
	// count what the finders found.
	Redacted      []image.Rectangle
	Faces, Plates int
	// Format is the input's format, FormatJPEG or FormatPNG.
	Format string
}

// Process decodes a camera photo and makes its private and public copies.
// Extra regions (in the coordinates of the upright private copy, for
// example what the user marked on the screen) are redacted in the public
// copy too.
func (p *Processor) Process(data []byte, extra ...image.Rectangle) (*Result, error) {
	img, format, err := p.opts.Decode(data)
	if err != nil {
		return nil, err
	}
	private := shrink(img, p.opts.MaxSide)
	res := &Result{Format: format, Width: private.Rect.Dx(), Height: private.Rect.Dy()}
	if res.Private, err = Encode(private, p.opts.Quality); err != nil {
		return nil, err
	}
	public := shrink(private, p.opts.PublicMaxSide)
	if public == private {
		public = toRGBA(private)
	}
	res.PublicWidth, res.PublicHeight = public.Rect.Dx(), public.Rect.Dy()
	var regions []Region
	for _, r := range p.faces.FindFaces(public) {
		regions = append(regions, Region{Rect: r, Kind: KindFace})
		res.Faces++
	}
	for _, r := range p.plates.FindPlates(public) {
		regions = append(regions, Region{Rect: r, Kind: KindPlate})
		res.Plates++
	}
	kx := float64(public.Rect.Dx()) / float64(private.Rect.Dx())
	ky := float64(public.Rect.Dy()) / float64(private.Rect.Dy())
	for _, r := range extra {
		regions = append(regions, Region{Kind: KindManual, Rect: image.Rect(
			int(float64(r.Min.X)*kx), int(float64(r.Min.Y)*ky),
			int(float64(r.Max.X)*kx+0.999), int(float64(r.Max.Y)*ky+0.999))})
	}
	res.Redacted = p.opts.Redact(public, regions)
	if res.Public, err = Encode(public, p.opts.PublicQuality); err != nil {
		return nil, err
	}
	return res, nil
}

// Clean returns the private copy alone (see Options.Clean).
func (p *Processor) Clean(data []byte) ([]byte, error) { return p.opts.Clean(data) }

// Clean decodes a camera photo and returns it upright, at most MaxSide,
// as a JPEG without metadata: the private copy alone, for photos that are
// never published (evidence photos of a notice, for example).
func (o Options) Clean(data []byte) ([]byte, error) {
	o = o.withDefaults()
	img, _, err := o.Decode(data)
	if err != nil {
		return nil, err
	}
	return Encode(shrink(img, o.MaxSide), o.Quality)
}
