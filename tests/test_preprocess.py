"""Face pre-processing: template, similarity fit, alignment, 68→5 points, scaling, detection on a real photo."""

import cv2
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from fbn_keras import preprocess as pp


def _similarity(theta_deg, scale, tx, ty):
    """A (2, 3) rotation-scale-shift matrix written out by hand."""
    c, s = np.cos(np.radians(theta_deg)), np.sin(np.radians(theta_deg))
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.fixture(scope="module")
def detector():
    return pp.FaceDetector(min_confidence=0.9)


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def astronaut_faces(detector, astronaut):
    return detector.detect(astronaut)


# === Template and geometry ===

def test_template_is_arcface_scaled_to_96():
    t = pp.template(96)
    assert t.shape == (5, 2) and t.dtype == np.float32
    # 38.2946 · 96/112 and 92.2041 · 96/112, by hand.
    np.testing.assert_allclose(t[0], [32.82394, 44.31111], atol=1e-4)
    np.testing.assert_allclose(t[4], [60.62563, 79.03209], atol=1e-4)
    np.testing.assert_allclose(pp.template(112), pp.ARCFACE_TEMPLATE_112)


def test_similarity_transform_recovers_a_known_transform():
    src = np.array([[10.0, 20.0], [50.0, 22.0], [30.0, 40.0], [15.0, 60.0], [47.0, 61.0]])
    truth = _similarity(30.0, 1.7, 5.0, -3.0)
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(pp.similarity_transform(src, dst), truth, atol=1e-9)


def test_similarity_transform_never_mirrors():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = src * np.array([-1.0, 1.0])
    m = pp.similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_transform_points_by_hand():
    m = np.array([[0.0, -2.0, 1.0], [2.0, 0.0, 0.0]])   # rotate 90°, scale 2, shift x by 1
    np.testing.assert_allclose(pp.transform_points([[1.0, 0.0], [0.0, 1.0]], m), [[1.0, 2.0], [-1.0, 0.0]])


def test_landmarks68_to_5_on_hand_points():
    pts = np.array([[i, 2 * i] for i in range(68)], np.float64)
    five = pp.landmarks68_to_5(pts)
    # Means of 36..41 and 42..47 are 38.5 and 44.5; nose tip 30; mouth corners 48 and 54.
    np.testing.assert_allclose(five, [[38.5, 77.0], [44.5, 89.0], [30, 60], [48, 96], [54, 108]])
    np.testing.assert_allclose(pp.landmarks68_to_5(pts.ravel()), five)   # flat x1,y1,x2,y2,… too
    with pytest.raises(ValueError, match="68"):
        pp.landmarks68_to_5(pts[:60])


def _scene():
    """A smooth 96×96 'face' image, and a 300×300 scene holding it rotated, scaled and shifted."""
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    face = np.stack([xx * 2.5, yy * 2.5, 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 11.0)], -1)
    face = np.clip(face, 0, 255).astype(np.uint8)
    to_scene = _similarity(-20.0, 1.5, 60.0, 70.0)
    scene = cv2.warpAffine(face, to_scene, (300, 300), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    landmarks = pp.template(96) @ to_scene[:, :2].T + to_scene[:, 2]
    return face, scene, landmarks


def test_align_face_undoes_a_known_warp():
    face, scene, landmarks = _scene()
    crop = pp.align_face(scene, landmarks, size=96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    inner = (slice(8, 88), slice(8, 88))   # away from the border, where both warps interpolate
    err = np.abs(crop[inner].astype(int) - face[inner].astype(int))
    assert err.mean() < 0.5 and err.max() <= 3


def test_align_from_landmarks_68_matches_5():
    face, scene, landmarks5 = _scene()
    pts68 = np.zeros((68, 2))
    pts68[36:42] = landmarks5[0]
    pts68[42:48] = landmarks5[1]
    pts68[30], pts68[48], pts68[54] = landmarks5[2], landmarks5[3], landmarks5[4]
    np.testing.assert_array_equal(pp.align_from_landmarks(scene, pts68), pp.align_face(scene, landmarks5))
    np.testing.assert_array_equal(pp.align_from_landmarks(scene, landmarks5.ravel()),
                                  pp.align_face(scene, landmarks5))
    with pytest.raises(ValueError, match="5 or 68"):
        pp.align_from_landmarks(scene, np.zeros((7, 2)))


def test_align_face_shrinks_large_faces_without_aliasing():
    """A face 8× larger than the crop: a fine stripe pattern should average to grey, not alias."""
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255                                  # 1-pixel stripes, mean 127.5
    landmarks = pp.template(96) * 8.0
    crop = pp.align_face(stripes, landmarks, size=96)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 10


def test_bad_landmarks_and_border_are_clear_errors():
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="5 landmarks"):
        pp.align_face(img, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        pp.align_face(img, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="border"):
        pp.align_face(img, pp.template(), border="wrap")
    with pytest.raises(ValueError, match="all the same"):
        pp.similarity_transform(np.ones((5, 2)), pp.template())


# === Image checks and reading ===

def test_ensure_rgb_converts_gray_and_rgba():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = pp.ensure_rgb(gray)
    assert rgb.shape == (3, 4, 3) and np.all(rgb[..., 0] == gray) and np.all(rgb[..., 2] == gray)
    assert pp.ensure_rgb(gray[..., None]).shape == (3, 4, 3)
    rgba = np.dstack([rgb, np.full((3, 4), 7, np.uint8)])
    np.testing.assert_array_equal(pp.ensure_rgb(rgba), rgb)
    with pytest.raises(ValueError, match="uint8"):
        pp.ensure_rgb(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="channels"):
        pp.ensure_rgb(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        pp.ensure_rgb(np.zeros((2, 3, 4, 3), np.uint8))


def test_read_image_gives_rgb_and_clear_errors(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200                                           # red in RGB
    cv2.imwrite(str(tmp_path / "red.png"), img[..., ::-1])      # OpenCV writes BGR
    out = pp.read_image(tmp_path / "red.png")
    assert out.shape == (4, 5, 3) and out[0, 0].tolist() == [200, 0, 0]
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="bad.jpg"):
        pp.read_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="missing.png"):
        pp.read_image(tmp_path / "missing.png")
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])   # truncated mid-scan
    with pytest.raises(ValueError, match="cut.jpg"):
        pp.read_image(tmp_path / "cut.jpg")


# === Scaling ===

def test_to_model_input_range_by_hand():
    x = np.array([[[0, 255, 51]]], np.uint8)
    y = pp.to_model_input(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[[-1.0, 1.0, 51 / 127.5 - 1]]], atol=1e-6)   # 51 → -0.6
    with pytest.raises(ValueError, match="uint8"):
        pp.to_model_input(x.astype(np.float32))


def test_from_model_input_inverts_every_level():
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(pp.from_model_input(pp.to_model_input(levels)), levels)
    np.testing.assert_array_equal(pp.from_model_input(np.array([-3.0, 3.0])), [0, 255])


def test_scaling_inside_tf_data_map():
    levels = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    ds = tf.data.Dataset.from_tensor_slices(levels).map(pp.to_model_input)
    got = np.stack([x.numpy() for x in ds])
    np.testing.assert_allclose(got, levels.astype(np.float32) / 127.5 - 1.0, atol=1e-6)
    back = tf.data.Dataset.from_tensor_slices(got).map(pp.from_model_input)
    np.testing.assert_array_equal(np.stack([x.numpy() for x in back]), levels)
    assert pp.to_model_input(tf.constant(levels)).dtype == tf.float32


# === Detection on a real photo ===

def test_astronaut_has_one_face(astronaut_faces):
    assert len(astronaut_faces) == 1
    face = astronaut_faces[0]
    assert face.confidence > 0.9 and face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    x, y, w, h = face.box
    # Her face spans about x 180–265, y 65–170 of the 512×512 photo (read off the image).
    assert 170 < x < 200 and 50 < y < 80 and 60 < w < 110 and 80 < h < 130
    le, re, nose, ml, mr = face.landmarks
    assert le[0] < nose[0] < re[0] and max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])


def test_astronaut_aligned_eyes_on_template(astronaut, astronaut_faces):
    face = astronaut_faces[0]
    crop = pp.align_face(astronaut, face.landmarks)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    moved = pp.transform_points(face.landmarks, pp.alignment_matrix(face.landmarks))
    eye_err = np.linalg.norm(moved[:2] - pp.template()[:2], axis=1)
    # After alignment the eye centres lie within 2 px of the template's. (An
    # unweighted fit misses by 2.0–2.2 px here: her broad smile pulls the mouth corners,
    # hence LANDMARK_WEIGHTS, which count the eyes twice.)
    assert np.all(eye_err < 2.0), eye_err
    plain = pp.transform_points(face.landmarks, pp.alignment_matrix(face.landmarks, weights=None))
    assert np.linalg.norm(plain[:2] - pp.template()[:2], axis=1).max() > eye_err.max()


def test_weighted_similarity_by_hand():
    # dst is src shifted by (10, 0) except the last point, moved far off. With weight 0 on
    # that point the fit is the exact shift; equal weights give the plain Umeyama fit.
    src = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    dst = src + [10.0, 0.0]
    dst[3] = [40.0, 40.0]
    m = pp.similarity_transform(src, dst, weights=[1, 1, 1, 0])
    np.testing.assert_allclose(m, [[1, 0, 10], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(pp.similarity_transform(src, dst, [2, 2, 2, 2]), pp.similarity_transform(src, dst))
    with pytest.raises(ValueError, match="weights"):
        pp.similarity_transform(src, dst, weights=[1, 1, 1])


def test_detect_again_on_the_crop_finds_the_template(detector, astronaut, astronaut_faces):
    """An independent check of the warp: landmarks re-detected in the crop sit on the template."""
    crop = pp.align_face(astronaut, astronaut_faces[0].landmarks)
    padded = cv2.copyMakeBorder(crop, 48, 48, 48, 48, cv2.BORDER_CONSTANT)
    again = detector.detect(padded)
    assert len(again) == 1
    err = np.linalg.norm(again[0].landmarks[:2] - 48 - pp.template()[:2], axis=1)
    assert np.all(err < 3.0), err


def test_grayscale_photo_is_converted_and_detected(detector, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    pairs = pp.detect_and_align(gray, detector)
    assert len(pairs) == 1 and pairs[0][1].shape == (96, 96, 3)


def test_no_face_and_confidence_filter(detector):
    assert detector.detect(np.full((120, 160, 3), 90, np.uint8)) == []
    assert detector.detect_batch([]) == []
    with pytest.raises(ValueError, match="min_confidence"):
        pp.FaceDetector(min_confidence=1.5)


def test_detect_batch_matches_single_images(detector, astronaut, astronaut_faces):
    blank = np.full_like(astronaut, 128)
    with_face, without = detector.detect_batch([astronaut, blank])
    assert without == [] and len(with_face) == 1
    np.testing.assert_allclose(with_face[0].landmarks, astronaut_faces[0].landmarks, atol=0.5)
