"""dlib's 68 landmarks on a real photograph, and the per-frame audio spectrogram on tones whose spectrum we know."""

import wave

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from fbn_keras import audio, data, landmarks, preprocess
from fbn_keras.records import writer
from fbn_keras.records.encode import make_aligner
from fbn_keras.records.items import Item

RATE = audio.SAMPLE_RATE
BAND_HZ = audio.MAX_HZ / audio.BANDS            # 83.3 Hz per band


def _tone(band: int, seconds: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    """A sine at the centre of `band`: (band + ½)·83.3 Hz."""
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * (band + 0.5) * BAND_HZ * t)


# === Audio ===

def test_spectrogram_geometry_and_peaks_by_hand(tmp_path):
    # 0.5 s at band 12 (1041.7 Hz), then 0.5 s at band 36 (3041.7 Hz)
    path = tmp_path / "tones.wav"
    audio.write_wav(path, np.concatenate([_tone(12, 0.5), _tone(36, 0.5)]))
    samples, rate = audio.read_wav(path)
    assert rate == RATE and samples.shape == (RATE,)
    spec = audio.spectrogram(samples, rate)
    # window round(44100·0.033) = 1455 samples, hop round(44100·0.022) = 970: 1 + (44100 − 1455) // 970 = 44
    assert spec.shape == (44, 96)
    assert np.all(spec[:20].argmax(1) == 12) and np.all(spec[-20:].argmax(1) == 36)
    unit = audio.to_unit(spec)
    assert unit.max() == 1.0 and unit.min() >= -1.0
    # frame at 0.25 s → column round((0.25 − 0.0165)/0.022) = 11; at 0.75 s → 33; at 0 s → round(−0.75) = −1
    np.testing.assert_array_equal(audio.frame_columns([0.25, 0.75, 0.0]), [11, 33, -1])
    windows = audio.frame_windows(unit, np.array([11, 33, -1]))
    assert windows.shape == (3, 96, 96)
    assert windows[0][:, 48].argmax() == 12 and windows[1][:, 48].argmax() == 36
    np.testing.assert_array_equal(windows[0][:, 48], unit[11])
    # the window of column −1 spans columns −49 … 46: its first 49 columns are before the track (silence)
    assert np.all(windows[2][:, :49] == -1.0) and np.all(windows[2][:, 49] == unit[0])


def test_video_windows_resample_and_png_round_trip(tmp_path):
    path = tmp_path / "low.wav"
    audio.write_wav(path, _tone(24, 1.0, rate=22050), rate=22050)          # resampled to 44.1 kHz first
    pngs = audio.video_windows(path, np.arange(1, 31), fps=30.0)
    assert len(pngs) == 30
    window = audio.decode_png(pngs[15])
    assert window.shape == (96, 96) and window[:, 48].argmax() == 24
    np.testing.assert_allclose(audio.decode_png(audio.encode_png(np.full((96, 96), 0.3))), 0.3, atol=1 / 127.5)
    with pytest.raises(ValueError, match="fps"):
        audio.video_windows(path, [1], fps=0)


def test_read_wav_mixes_channels_and_rejects_other_files(tmp_path):
    stereo = np.stack([np.full(100, 16384, "<i2"), np.full(100, -8192, "<i2")], axis=1)
    with wave.open(str(tmp_path / "s.wav"), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(stereo.tobytes())
    samples, rate = audio.read_wav(tmp_path / "s.wav")
    np.testing.assert_allclose(samples, (0.5 - 0.25) / 2)              # (16384 − 8192) / 2 / 32768
    assert rate == 8000
    (tmp_path / "x.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        audio.read_wav(tmp_path / "x.wav")


# === dlib's 68 landmarks ===

def test_dlib_landmarks_on_a_photograph_agree_with_mtcnn(tmp_path):
    photo = skdata.astronaut()
    marker = landmarks.Landmarker()
    faces = marker.detect(photo)
    assert len(faces) >= 1 and faces[0].shape == (68, 2)
    mtcnn = preprocess.FaceDetector(min_confidence=0.9).detect(photo)[0].landmarks
    five = preprocess.landmarks68_to_5(faces[0])
    # MTCNN's eye centres and dlib's (means of points 36–41, 42–47) agree within 4 px on a ~90 px face
    np.testing.assert_allclose(five[:2], mtcnn[:2], atol=4.0)
    # On the 96×96 crop aligned from MTCNN's points, dlib finds the same points moved into the crop.
    crop = preprocess.align_face(photo, mtcnn, 96)
    expected = preprocess.transform_points(faces[0], preprocess.alignment_matrix(mtcnn, 96))
    on_crop = marker.on_crop(crop)
    assert np.mean(np.hypot(*(on_crop - expected).T)) < 3.0
    unit = landmarks.to_unit(on_crop, 96)
    np.testing.assert_allclose(landmarks.from_unit(unit, 96), on_crop, atol=1e-4)
    assert landmarks.flatten(unit).shape == (136,)
    # The writer runs the landmarker on every crop whose item brings no landmarks.
    item = Item(database="lm", split="train", image_id="a/1", load=lambda: crop, group="a", frame=1, va=(0.0, 0.0))
    writer.write_shards([item], tmp_path, "lm", aligner=make_aligner("none", landmarker=marker))
    (raw,) = list(tf.data.TFRecordDataset(str(tmp_path / "va" / "lm-train-00000-of-00001.tfrecord")))
    stored = tf.io.parse_single_example(raw, {data.LANDMARKS: tf.io.FixedLenFeature([136], tf.float32)})
    np.testing.assert_allclose(stored[data.LANDMARKS].numpy(), landmarks.flatten(unit), atol=1e-6)
