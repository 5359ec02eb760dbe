// Package photo prepares camera photos of road damage for the report: it
// strips every piece of metadata and makes a public copy in which faces and
// licence plates cannot be recognised (DOMAIN.md §3: "Public photos must be
// stripped of EXIF and faces and plates blurred").
//
// # Metadata
//
// A camera JPEG carries EXIF (with the GPS position, the time, the camera's
// serial number), often XMP, an ICC profile, maker notes, a thumbnail of the
// unedited picture and sometimes bytes after the image. The package does not
// filter these out of the file: it decodes the pixels ([Options.Decode],
// JPEG or PNG, size-checked before the pixels are decoded), turns them
// upright as the EXIF orientation says, and encodes a new baseline JPEG
// ([Encode]), which holds nothing but the image. [Metadata] parses a JPEG's
// segments and names the metadata it finds; Encode runs it on its own
// output and fails rather than return a file with any.
//
// # Faces and plates
//
// A [Processor] makes two copies of a photo ([Processor.Process]): the
// private copy for the office, and the public copy, scaled down, in which
// the regions found by a [FaceFinder] (internal/facedetect, pigo's
// cascades: [Faces]) and a [PlateFinder] (the heuristic [Plates]), plus any
// the user marked, are redacted ([Options.Redact]): coarse pixelation with
// random noise per cell, then a strong blur. That keeps no more than each
// region's rough colour, so it cannot be undone, unlike a light Gaussian
// blur. The finders can miss a face or a plate (far away, in profile, in
// shadow): the user looks at the public copy before filing and can mark
// more regions.
package photo
