"""Track ids across frames: association by box IoU and keypoint OKS, solved as an optimal assignment.

The rule (`PoseTracker.update`), per frame:

0. Instances known to continue a track (`known_ids`: the poses found between detector frames in the box derived
   from a track's previous pose) keep its id; the others are associated with the remaining tracks as follows.
1. Every live track predicts where it is now: its last box and keypoints shifted by its velocity (an average of the
   box-centre displacement per frame over its matches) times the frames since it was last seen (at most
   `max_extrapolation` frames).
2. Similarity of track ``t`` and instance ``d``: ``iou_weight * IoU(box_t, box_d) + (1 - iou_weight) * OKS(t, d)``,
   with the OKS of `vitpose.evaluation.oks_matrix` over the keypoints scored above `kpt_thr` in both (areas: the
   boxes' width x height, sigmas: the data set's). A pair with no such keypoint scores its IoU alone.
3. Pairs below `min_similarity` may not match. The assignment maximising the number of allowed matches, then their
   total similarity, is solved exactly by the Hungarian method (`linear_assignment`, written here; no scipy).
4. Matched tracks take the instance's box and keypoints; unmatched instances start new tracks with fresh ids (1, 2, 3,
   ... never reused); a track unmatched for more than `max_age` consecutive frames ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vitpose.errors import VitPoseError
from vitpose.ops.oks import oks_matrix

__all__ = ["PoseTracker", "Track", "box_iou_matrix", "linear_assignment"]

_FORBIDDEN = 1e6  # cost of a pair below the similarity gate (similarities lie in [0, 1])


def linear_assignment(cost: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns (the Hungarian method, Kuhn-Munkres), exact.

    The shortest-augmenting-path form with row and column potentials: each row in turn is added and the matching
    re-augmented along a shortest path in reduced costs, O(n^2 m) for n <= m (a wider-than-tall matrix is solved
    transposed). Same output convention as `scipy.optimize.linear_sum_assignment`.

    Args:
        cost: (n, m) finite costs.

    Returns:
        rows, cols: (min(n, m),) int64 each; row ``rows[i]`` goes to column ``cols[i]``; rows ascending.
    """
    matrix = np.asarray(cost, dtype=np.float64)
    if matrix.ndim != 2:
        raise VitPoseError(f"cost must be a 2-D array, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise VitPoseError("cost must be finite (use a large value for forbidden pairs)")
    n, m = matrix.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    transposed = n > m
    if transposed:
        matrix, n, m = matrix.T, m, n
    # 1-based indices; column 0 is a virtual column holding the row being inserted.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)  # owner[j]: row matched to column j (0: none)
    way = np.zeros(m + 1, np.int64)  # previous column on the shortest path
    for row in range(1, n + 1):
        owner[0] = row
        col = 0
        min_reduced = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[col] = True
            current_row = owner[col]
            free = ~used[1:]
            reduced = matrix[current_row - 1] - u[current_row] - v[1:]
            better = free & (reduced < min_reduced[1:])
            min_reduced[1:][better] = reduced[better]
            way[1:][better] = col
            candidates = np.where(free, min_reduced[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            u[owner[used]] += delta
            v[used] -= delta
            min_reduced[~used] -= delta
            col = next_col
            if owner[col] == 0:
                break
        while col != 0:  # augment along the path
            previous = way[col]
            owner[col] = owner[previous]
            col = previous
    cols = np.flatnonzero(owner[1:] > 0)
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def box_iou_matrix(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        boxes_a: (N, 4) COCO [x, y, width, height].
        boxes_b: (M, 4) COCO [x, y, width, height].

    Returns:
        (N, M) float64 IoU in [0, 1] (0 where the union is empty).
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Track:
    """One tracked person.

    Attributes:
        track_id: its id (>= 1, unique for the tracker's life).
        box: (4,) float64 COCO [x, y, w, h] of its last match.
        keypoints: (K, 2) float64 keypoints of its last match (as estimated, not smoothed).
        keypoint_scores: (K,) float64.
        velocity: (2,) float64 box-centre displacement per frame (averaged over matches).
        missed: consecutive frames without a match (0 when matched in the last frame).
        hits: frames matched so far.
        smoother: per-track state of whoever smooths the keypoints (`VideoPoseTracker` keeps a One Euro filter).
    """

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    missed: int = 0
    hits: int = 1
    smoother: Any = None

    def predict(self, max_extrapolation: int) -> tuple[np.ndarray, np.ndarray]:
        """(box (4,), keypoints (K, 2)) expected in the current frame: the last ones moved by the velocity."""
        shift = self.velocity * min(self.missed + 1, max_extrapolation)
        box = self.box.copy()
        box[:2] += shift
        return box, self.keypoints + shift


class PoseTracker:
    """Gives each pose a track id that stays with the same person across frames (see the module docstring).

    Args:
        sigmas: (K,) OKS sigmas (the data set's, `DatasetInfo.sigmas`).
        max_age: a track unmatched for more than this many consecutive frames ends (30).
        kpt_thr: keypoints scored above this count in the OKS (0.3).
        iou_weight: weight of the box IoU in the similarity; the OKS gets the rest (0.5).
        min_similarity: pairs below this similarity never match (0.3).
        max_extrapolation: frames over which a lost track's velocity is extrapolated at most (10).
    """

    def __init__(
        self,
        sigmas: ArrayLike,
        *,
        max_age: int = 30,
        kpt_thr: float = 0.3,
        iou_weight: float = 0.5,
        min_similarity: float = 0.3,
        max_extrapolation: int = 10,
    ) -> None:
        if max_age < 0:
            raise VitPoseError(f"max_age must be >= 0, got {max_age}")
        if not 0.0 <= iou_weight <= 1.0:
            raise VitPoseError(f"iou_weight must lie in [0, 1], got {iou_weight}")
        self.sigmas = np.asarray(sigmas, np.float64)
        self.max_age = int(max_age)
        self.kpt_thr = float(kpt_thr)
        self.iou_weight = float(iou_weight)
        self.min_similarity = float(min_similarity)
        self.max_extrapolation = max(1, int(max_extrapolation))
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def next_id(self) -> int:
        """The id the next new track will get (so `next_id - 1` tracks were started)."""
        return self._next_id

    def reset(self) -> None:
        """End every track; ids keep counting up (none is ever reused)."""
        self.tracks = []

    def similarity(
        self,
        boxes: np.ndarray,
        keypoints: np.ndarray,
        keypoint_scores: np.ndarray,
        tracks: list[Track] | None = None,
    ) -> np.ndarray:
        """(T, N) similarity of tracks (default: the live ones), as predicted for this frame, and instances
        (boxes (N, 4), keypoints (N, K, 2), keypoint_scores (N, K))."""
        tracks = self.tracks if tracks is None else tracks
        if not tracks or len(boxes) == 0:
            return np.zeros((len(tracks), len(boxes)))
        predicted = [t.predict(self.max_extrapolation) for t in tracks]
        t_boxes = np.stack([b for b, _ in predicted])
        t_kpts = np.stack([k for _, k in predicted])
        t_scores = np.stack([t.keypoint_scores for t in tracks])
        iou = box_iou_matrix(t_boxes, boxes)
        areas_t = t_boxes[:, 2] * t_boxes[:, 3]
        areas_d = boxes[:, 2] * boxes[:, 3]
        oks = oks_matrix(
            t_kpts,
            keypoints,
            areas_t,
            areas_d,
            self.sigmas,
            scores_a=t_scores,
            scores_b=keypoint_scores,
            vis_thr=self.kpt_thr,
            require_both_visible=True,
        )
        counted = ((t_scores > self.kpt_thr)[:, None, :] & (keypoint_scores > self.kpt_thr)[None]).any(-1)
        return np.where(counted, self.iou_weight * iou + (1.0 - self.iou_weight) * oks, iou)

    def update(
        self,
        boxes: ArrayLike,
        keypoints: ArrayLike,
        keypoint_scores: ArrayLike,
        known_ids: ArrayLike | None = None,
    ) -> np.ndarray:
        """Associate one frame's instances with the tracks and return their ids.

        Args:
            boxes: (N, 4) COCO [x, y, w, h] the poses were estimated in.
            keypoints: (N, K, 2) keypoints in image pixels.
            keypoint_scores: (N, K).
            known_ids: optional (N,) ids the instances are known to continue (0: unknown), as for poses found in
                boxes derived from a track's previous pose; an id of a live track is taken as is, the others are
                associated as usual.

        Returns:
            (N,) int64 track ids, in the instances' order.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        k = len(self.sigmas)
        keypoints = np.asarray(keypoints, np.float64)
        keypoint_scores = np.asarray(keypoint_scores, np.float64)
        if keypoints.shape != (n, k, 2) or keypoint_scores.shape != (n, k):
            raise VitPoseError(
                f"expected keypoints ({n}, {k}, 2) and keypoint_scores ({n}, {k}) for {n} boxes and {k} sigmas, got "
                f"{keypoints.shape} and {keypoint_scores.shape}"
            )
        ids = np.zeros(n, np.int64)
        matched_tracks: set[int] = set()
        if known_ids is not None:
            known = np.asarray(known_ids, np.int64).reshape(-1)
            if known.shape != (n,):
                raise VitPoseError(f"known_ids must have shape ({n},), got {known.shape}")
            position = {t.track_id: i for i, t in enumerate(self.tracks)}
            for d, track_id in enumerate(known.tolist()):
                t = position.get(track_id)
                if track_id > 0 and t is not None and t not in matched_tracks:
                    self._match(self.tracks[t], boxes[d], keypoints[d], keypoint_scores[d])
                    ids[d] = track_id
                    matched_tracks.add(t)
        open_tracks = [t for t in range(len(self.tracks)) if t not in matched_tracks]
        open_dets = np.flatnonzero(ids == 0)
        if open_tracks and len(open_dets):
            candidates = [self.tracks[t] for t in open_tracks]
            sim = self.similarity(boxes[open_dets], keypoints[open_dets], keypoint_scores[open_dets], candidates)
            cost = np.where(sim >= self.min_similarity, 1.0 - sim, _FORBIDDEN)
            for row, col in zip(*linear_assignment(cost), strict=True):
                if cost[row, col] >= _FORBIDDEN:
                    continue
                t, d = open_tracks[row], open_dets[col]
                self._match(self.tracks[t], boxes[d], keypoints[d], keypoint_scores[d])
                ids[d] = self.tracks[t].track_id
                matched_tracks.add(t)
        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_age:
                    continue
            survivors.append(track)
        for d in np.flatnonzero(ids == 0):
            track = Track(self._next_id, boxes[d].copy(), keypoints[d].copy(), keypoint_scores[d].copy())
            self._next_id += 1
            survivors.append(track)
            ids[d] = track.track_id
        self.tracks = survivors
        return ids

    def get(self, track_id: int) -> Track | None:
        """The live track with this id, or None."""
        for track in self.tracks:
            if track.track_id == track_id:
                return track
        return None

    @staticmethod
    def _match(track: Track, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> None:
        frames = track.missed + 1
        step = ((box[:2] + box[2:] / 2) - (track.box[:2] + track.box[2:] / 2)) / frames
        track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
        track.box = box.copy()
        track.keypoints = keypoints.copy()
        track.keypoint_scores = scores.copy()
        track.missed = 0
        track.hits += 1
