// Package finger judges fingerprint captures at the kiosk: a quality score
// from 0 to 100 (Failed, 255, when the image cannot be scored), the
// enrolment threshold, the PNG export for the application record, and the
// rule that children under six give no fingerprints.
//
// # The quality score
//
// The score follows the scale and meaning of NFIQ 2 (ISO/IEC 29794-4):
// higher is better, 30 is the enrolment threshold for index fingers. It
// is computed from the features NFIQ 2 builds on, on blocks of 16 × 16
// pixels (0.8 mm at 500 ppi; block and window sizes scale with
// Config.PPI):
//
//  1. Segmentation. A block is on the finger when the standard deviation
//     of its grey levels, after a 3 × 3 mean filter that takes out sensor
//     noise, is at least 10 grey levels. Isolated blocks (dust, a scratch)
//     are dropped, and background enclosed by the finger is counted as
//     finger: a smudge in the middle of a print is part of the print,
//     and a bad one.
//  2. Orientation coherence. The gradient structure tensor (Sobel
//     gradients, summed over a 32 × 32 window around the block) gives the
//     ridge orientation and its coherence
//     √((Gxx−Gyy)² + 4Gxy²) / (Gxx+Gyy): 1 for parallel ridges, near 0
//     for noise.
//  3. Ridge contrast, frequency and clarity. Across the ridges, the
//     window's grey levels averaged along the ridge orientation form a
//     profile (Hong, Wan and Jain's x-signature). The sinusoid that
//     explains most of its variance gives the ridge period, the ridge
//     amplitude (grey levels from a ridge's centre to the mean) and the
//     clarity (the share of the profile's variance it explains).
//  4. Block quality: the product of four factors in [0, 1]: contrast
//     (amplitude 6 → 0, 30 → 1), coherence (0.3 → 0, 0.7 → 1), clarity
//     (0.25 → 0, 0.6 → 1) and frequency plausibility (1 for periods of
//     0.30–0.76 mm, that is 6–15 pixels at 500 ppi; 0 below 0.2 mm and
//     above 1 mm). Linear between the named points.
//  5. The score: 100 × the mean block quality over the finger × the area
//     factor, which is 1 when the finger covers at least
//     Config.MinForeground of the image and falls linearly to 0 at half
//     of it. A blank sensor has no finger blocks and scores 0.
//
// On the simulator's synthetic prints (simulators/devices/fingerprint)
// good ones score 85–95, also at the 4 bits per pixel the R30x sensor
// delivers; faint prints score below 20, smudged and partial prints, a
// blank sensor and noise about 0. Added noise and blur lower the score
// steadily. The calibration is the table in the tests; real prints will
// need it checked against NFIQ 2. NIST's NFIQ 2 is a C++ library; when the
// kiosk gets it, it comes behind the same Score method and this method
// stays as the fallback.
//
// Scoring a 256 × 288 image takes about 20 ms on two cores, well within
// the 300 ms the kiosk has: see BenchmarkScore.
package finger
