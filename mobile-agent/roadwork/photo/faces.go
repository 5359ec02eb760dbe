package photo

import (
	"image"

	"github.com/kogge-fleet/kogge/internal/facedetect"
)

// FaceFinder finds faces in an image.
type FaceFinder interface {
	// FindFaces returns the face boxes in img's coordinates (brows to
	// chin, cheek to cheek; the redaction adds the hair and the ears).
	FindFaces(img image.Image) []image.Rectangle
}

// FacesFunc adapts a function to a FaceFinder.
type FacesFunc func(img image.Image) []image.Rectangle

// FindFaces calls f.
func (f FacesFunc) FindFaces(img image.Image) []image.Rectangle { return f(img) }

// DefaultFaceOptions are the face detector's settings for street photos:
// faces from 20 px up in an image shrunk to 1600 px, with a lower score
// than the kiosk's portrait checks need, since a missed face costs more
// here than a blurred patch of wall.
var DefaultFaceOptions = facedetect.Options{MinSize: 20, MaxDim: 1600, MinScore: 3}

// Faces finds faces with internal/facedetect (pigo's cascades).
type Faces struct {
	d *facedetect.Detector
}

var _ FaceFinder = (*Faces)(nil)

// NewFaces returns a face finder with opts (DefaultFaceOptions suits
// street photos).
func NewFaces(opts facedetect.Options) (*Faces, error) {
	d, err := facedetect.NewWithOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Faces{d: d}, nil
}

// FindFaces returns the boxes of the faces in img.
func (f *Faces) FindFaces(img image.Image) []image.Rectangle {
	var out []image.Rectangle
	for _, face := range f.d.Faces(img) {
		out = append(out, face.Box)
	}
	return out
}
