"""The per-frame audio feature of the A/V network: a 96×96 spectrogram window centred on each video frame.

Journal Section IV: the audio (mono) is sampled at 44,100 Hz, spectrogram
frames are computed over 33 ms windows with 11 ms overlap (a 22 ms hop), and
the values are normalised to [-1, 1] "to be consistent with the visual
modality". The A/V-MT-VGG-GRU (Section VI-A, Fig. 3) runs an identical visual
stream on these images, so each video frame gets one image: 96 frequency bands
(rows, low to high) × the 96 spectrogram frames centred on the frame's time
(columns), our reading (docs/FAITHFULNESS.md, "Video").

Only the standard library (`wave`, PCM WAV) and numpy are used: a video's audio
track is read from a WAV file beside it (`ffmpeg -i clip.mp4 -ac 1 -ar 44100 clip.wav`),
so no decoder package is added (docs/VIDEO.md).
"""

from __future__ import annotations

import wave
from pathlib import Path

import cv2
import numpy as np

SAMPLE_RATE = 44_100          # Hz, Section IV
WINDOW_MS = 33.0              # spectrogram frame length, Section IV
OVERLAP_MS = 11.0             # overlap of consecutive spectrogram frames, Section IV
BANDS = 96                    # frequency rows of the per-frame image [reading]
WIDTH = 96                    # spectrogram frames (columns) per video frame [reading]
MAX_HZ = 8_000.0              # top of the 96 equal-width bands [reading: speech band]
DYNAMIC_RANGE_DB = 80.0       # what maps to [-1, 1]: the video's loudest band down to 80 dB below it


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM WAV file → (mono float32 samples in [-1, 1], sample rate); channels are averaged.

    Raises ValueError with the file's name for anything that is not 8/16/24/32-bit PCM.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, n = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path} is not a PCM WAV file ({err})") from None
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {width} bytes")
    x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    return x.astype(np.float32), int(rate)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Mono float samples in [-1, 1] → a 16-bit PCM WAV (tests, synthetic clips)."""
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Linear-interpolation resampling to `target` Hz (identity when the rates agree)."""
    if int(rate) == int(target):
        return np.asarray(samples, np.float32)
    n = int(round(len(samples) * target / rate))
    t = np.arange(n) * (rate / target)
    return np.interp(t, np.arange(len(samples)), samples).astype(np.float32)


def hop_seconds(window_ms: float = WINDOW_MS, overlap_ms: float = OVERLAP_MS) -> float:
    """Time between consecutive spectrogram frames: 33 − 11 = 22 ms."""
    return (window_ms - overlap_ms) / 1000.0


def spectrogram(samples: np.ndarray, rate: int = SAMPLE_RATE, window_ms: float = WINDOW_MS,
                overlap_ms: float = OVERLAP_MS, bands: int = BANDS, max_hz: float = MAX_HZ) -> np.ndarray:
    """(columns, bands) log power in dB: Hann-windowed frames of `window_ms`, hop `window_ms − overlap_ms`,
    FFT power averaged into `bands` equal-width bands over [0, max_hz).

    Column j covers samples [j·hop, j·hop + window); band b covers [b, b+1)·max_hz/bands Hz.
    """
    x = np.asarray(samples, np.float32)
    win = int(round(rate * window_ms / 1000.0))
    hop = int(round(rate * hop_seconds(window_ms, overlap_ms)))
    if win < 2 or hop < 1:
        raise ValueError(f"window and hop must be positive at {rate} Hz. Received: window_ms={window_ms}, "
                         f"overlap_ms={overlap_ms}")
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n_cols = 1 + (len(x) - win) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n_cols]
    power = np.abs(np.fft.rfft(frames * np.hanning(win).astype(np.float32), axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1.0 / rate)
    band = np.floor(freqs / (max_hz / bands)).astype(np.int64)
    keep = band < bands
    summed = np.zeros((n_cols, bands), np.float64)
    np.add.at(summed.T, band[keep], power[:, keep].T)
    counts = np.maximum(np.bincount(band[keep], minlength=bands), 1)
    return (10.0 * np.log10(summed / counts + 1e-12)).astype(np.float32)


def to_unit(spec_db: np.ndarray, dynamic_range_db: float = DYNAMIC_RANGE_DB) -> np.ndarray:
    """dB → [-1, 1]: the maximum maps to 1, `dynamic_range_db` below it (and anything lower) to -1."""
    top = float(np.max(spec_db)) if np.size(spec_db) else 0.0
    return (np.clip((np.asarray(spec_db) - top) / dynamic_range_db, -1.0, 0.0) * 2.0 + 1.0).astype(np.float32)


def frame_columns(frame_times: np.ndarray, rate: int = SAMPLE_RATE, window_ms: float = WINDOW_MS,
                  overlap_ms: float = OVERLAP_MS) -> np.ndarray:
    """Index of the spectrogram column whose window is centred nearest each time (seconds)."""
    hop = hop_seconds(window_ms, overlap_ms)
    centre0 = window_ms / 2000.0
    return np.round((np.asarray(frame_times, np.float64) - centre0) / hop).astype(np.int64)


def frame_windows(spec_unit: np.ndarray, columns: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """(n, bands, width) float32: for each centre column c, columns [c − width/2, c + width/2) of the
    (columns, bands) spectrogram, transposed to bands × time; outside the track the value is -1 (silence)."""
    spec = np.asarray(spec_unit, np.float32)
    half = width // 2
    padded = np.concatenate([np.full((half, spec.shape[1]), -1.0, np.float32), spec,
                             np.full((width, spec.shape[1]), -1.0, np.float32)])
    # Column c − half + i sits at padded row c + i; rows past either end are silence.
    idx = np.clip(np.asarray(columns, np.int64)[:, None] + np.arange(width)[None, :], 0, len(padded) - 1)
    return padded[idx].transpose(0, 2, 1)


def encode_png(window: np.ndarray) -> bytes:
    """A (bands, width) window in [-1, 1] → PNG of uint8 round((x + 1) · 127.5): the record's `feature/audio`."""
    img = np.clip(np.round((np.asarray(window, np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError(f"could not PNG-encode an audio window of shape {img.shape}")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """The inverse of `encode_png` (up to the uint8 quantisation): (bands, width) float32 in [-1, 1]."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("not a PNG audio window")
    return img.astype(np.float32) / 127.5 - 1.0


def video_windows(wav_path: str | Path, frames: np.ndarray, fps: float) -> list[bytes]:
    """The PNG window of each video frame number in `frames` (1-based, frame k at (k − 1)/fps seconds)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0. Received: fps={fps}")
    samples, rate = read_wav(wav_path)
    spec = to_unit(spectrogram(resample(samples, rate)))
    times = (np.asarray(frames, np.float64) - 1.0) / fps
    return [encode_png(w) for w in frame_windows(spec, frame_columns(times))]
