"""Typed config schema: the single definition of every knob a run has.

The dataclasses below are registered in Hydra's ConfigStore (:func:`spacing.compose.register_configs`);
each YAML option in ``conf/`` extends one of them, and every method's config is an option of the
``method`` group by itself, so an unknown key or a wrong type is rejected while composing.
Nothing here imports torch: composing a config, ``--help`` and ``spacing plan`` never need it.
Ranges and cross-field rules live in ``__post_init__`` and are checked when the composed
config is turned into these objects (:func:`to_config`), before any training starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spacing.contract import VALIDATION_METRICS
from spacing.errors import ConfigError

if TYPE_CHECKING:
    from spacing.schedule import Schedule

SCHEDULES = ("periodic", "random")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("constant", "multistep", "cosine")
DROPOUT_VARIANTS = ("standard", "max", "cutout")
EMA_BUFFERS = ("average", "copy", "recompute", "none")
EVAL_BN = ("recompute", "running")
SOFT_LOSSES = ("kl", "softce", "paper")
REPLAYS = ("lagged", "rounds")
MAX_SCOPES = ("sample", "batch")
ENSEMBLES = ("probs", "logits")
FEATURE_LOSSES = ("all", "paper")
FRESH_STEPS = ("deepest", "paper")
CONTROLS = ("none", "matched")
TEACHER_STREAMS = ("own", "student")
WANDB_MODES = ("offline", "online")
LOADERS = ("fast", "torchvision")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SWITCHES = ("auto", "true", "false")
MAX_SEED = 2**32 - 1
"""numpy's legacy seeding takes 32 bits."""
MAX_INTERVAL = 1e6
"""A longer finite interval than any run trains is meaningless, and its step count overflows."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _require_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    _require(value in choices, f"{key} must be one of {', '.join(choices)}; got '{value}'.")


@dataclass
class AugmentConfig:
    """Train-time augmentation, applied to whole batches (see spacing.data.augment)."""

    crop_padding: int = 0
    """Pixels of padding around each image before a random crop back to its size; 0 = no crop."""
    hflip: bool = False
    """Mirror each image left-right with probability 1/2."""
    rotation: float = 0.0
    """Largest rotation in degrees; each image turns by an angle drawn uniformly in [-rotation, rotation]."""
    cutout: int = 0
    """Side of the square zeroed after normalisation (Cutout); 0 = off."""
    autoaugment: bool = False
    """AutoAugment with the CIFAR-10 policy, a sub-policy drawn per image."""
    fill: int = 0
    """Grey level (0-255) of the pixels that crop padding, rotation and AutoAugment's geometric
    operations bring into the image (the self KD script padded and filled with 128)."""
    cutout_black: bool = False
    """Cut the hole out before normalisation, so it is black (the self KD script), instead of
    after it, where the hole is the mean colour (the Cutout paper's code)."""

    def __post_init__(self) -> None:
        _require(self.crop_padding >= 0, f"dataset.augment.crop_padding must be >= 0; got {self.crop_padding}.")
        _require(0 <= self.fill <= 255, f"dataset.augment.fill must be a grey level in [0, 255]; got {self.fill}.")
        _require(0 <= self.rotation <= 180, f"dataset.augment.rotation must be in [0, 180] degrees; got {self.rotation}.")
        _require(self.cutout >= 0, f"dataset.augment.cutout must be >= 0 pixels (0 = off); got {self.cutout}.")


@dataclass
class DatasetConfig:
    """Where the data comes from and how it is split; `name` selects the loader."""

    name: str = MISSING
    """The data set's loader (`spacing.data.DATASETS`); each option file in `conf/dataset/` sets it."""
    root: str | None = None
    """Folder of the data set's files; null: `$SPACING_DATA/<name>`, else `~/.cache/spacing/<name>`."""
    download: bool = True
    """Fetch missing files on first use; false: stop with one sentence that names the file to place."""
    loader: str = "fast"
    """fast: batches augmented on the training device; torchvision: per-image PIL transforms in
    DataLoader workers (to check that both give the same batches)."""
    workers: int = 2
    """DataLoader processes of `loader=torchvision`."""
    val_fraction: float = 0.1
    """Share of the training split held out for validation (drawn with `split_seed`); 0 = no validation
    split, and then no `test_acc_at_best_val`."""
    split_seed: int = 0
    """Seeds every split of the data: validation holdout, train_fraction subset, label_noise."""
    train_fraction: float = 1.0
    """Train on a stratified subset of the training split (after the validation holdout): less
    data gives regularisers and ensembles room to matter."""
    label_noise: float = 0.0
    """Fraction of training labels moved to a uniformly drawn other class (symmetric label
    noise); validation and test labels are never touched."""
    mean: list[float] | None = None
    """Per-channel normalisation mean in [0, 1]; null: the data set's own (see docs/data-and-models.md)."""
    std: list[float] | None = None
    """Per-channel normalisation standard deviation; null: the data set's own."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _require(
            (self.mean is None) == (self.std is None),
            "dataset.mean and dataset.std are set together (one value per channel each) or both left null.",
        )
        if self.mean is not None and self.std is not None:
            _require(
                len(self.mean) == len(self.std) and all(s > 0 for s in self.std),
                f"dataset.mean and dataset.std need one value per channel each, std > 0; got {list(self.mean)} and {list(self.std)}.",
            )
        _require(
            0.0 <= self.val_fraction < 1.0,
            f"dataset.val_fraction must be in [0, 1) (0 = no validation split); got {self.val_fraction}.",
        )
        _require(
            0.0 < self.train_fraction <= 1.0,
            f"dataset.train_fraction must be in (0, 1] (1 = the whole training split); got {self.train_fraction}.",
        )
        _require(
            0.0 <= self.label_noise < 1.0,
            f"dataset.label_noise must be in [0, 1) (a fraction of training labels); got {self.label_noise}.",
        )
        _require(
            0 <= self.split_seed <= MAX_SEED,
            f"dataset.split_seed must be an integer in [0, {MAX_SEED}]; got {self.split_seed}.",
        )
        _require_choice(self.loader, LOADERS, "dataset.loader")
        _require(self.workers >= 0, f"dataset.workers must be >= 0; got {self.workers}.")


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    """Generated class-prototype images: learnable, instant, no files (for tests and smoke runs)."""

    num_classes: int = 4
    """Classes of generated prototypes (`dataset=synthetic` only)."""
    train_size: int = 512
    """Generated training images (`dataset=synthetic` only)."""
    test_size: int = 256
    """Generated test images (`dataset=synthetic` only)."""
    image_size: int = 8
    """Side of the square images in pixels (`dataset=synthetic` only)."""
    channels: int = 1
    """1 (grey) or 3 (colour) (`dataset=synthetic` only)."""
    noise: float = 0.35
    """Standard deviation of the Gaussian pixel noise added to each prototype, on the [0, 1] scale
    (`dataset=synthetic` only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.num_classes >= 2, f"dataset.num_classes must be >= 2; got {self.num_classes}.")
        _require(self.train_size >= self.num_classes, "dataset.train_size must be at least dataset.num_classes.")
        _require(self.test_size >= 1, f"dataset.test_size must be >= 1; got {self.test_size}.")
        _require(self.image_size >= 4, f"dataset.image_size must be >= 4; got {self.image_size}.")
        _require(self.channels in (1, 3), f"dataset.channels must be 1 or 3; got {self.channels}.")


@dataclass
class ModelConfig:
    """Architecture choice and its width."""

    name: str = MISSING
    """The architecture (`spacing.models.MODELS`); each option file in `conf/model/` sets it."""
    width: int | None = None
    """Channels of the first stage (what it scales per architecture: see Datasets and models); null: the
    architecture's default."""

    def __post_init__(self) -> None:
        _require(self.width is None or self.width >= 1, f"model.width must be >= 1; got {self.width}.")


@dataclass
class MethodConfig:
    """What every method shares: when its ensemble is refreshed (see spacing.schedule), and whether the run
    is a control.

    A method's own config subclasses this and gives `name` its method's name as default: that
    makes it the method's schema and its option ``method=<name>`` (see :func:`method_schemas`).

    `control=matched` makes the run the control of the spaced cell its other keys name: a massed
    run that matches what the spaced cell changes besides the spacing (EMA: the averaging
    horizon; dropout: the mean rate; online KD: the teacher's lead). Each method's schema declares its control's `control_kind`
    and derives the massed config in :meth:`matched_control`; a method without a control has
    `control_kind` None.
    """

    name: str = MISSING
    """The method (`spacing.methods.METHODS`); each method's schema gives it as default."""
    interval: float = 0.0
    """Epochs between refreshes of the ensemble: 0 = massed (every step), s > 0 = spaced
    (every int(s x steps_per_epoch) steps), inf = offline (online KD only)."""
    schedule: str = "periodic"
    """periodic: a refresh every S steps, strength multiplier |sin(pi t / S)|; random: gaps drawn
    uniformly up to `random_max_gap`, multiplier U(0, 1)."""
    random_max_gap: float = 0.4
    """With schedule=random, gaps between refreshes are drawn uniformly in [1, random_max_gap epochs] steps."""
    control: str = "none"
    """none: the cell itself; matched: the massed control of the spaced cell named by the other keys."""

    control_kind: ClassVar[str | None] = None
    """What a control run of this method matches (the record's ``control.kind``); None: it has none."""

    fusable_keys: ClassVar[tuple[str, ...]] = ()
    """The ``method.`` keys in which the cells of one fused group may differ (they share one training
    trajectory, see docs/sweeps.md, Fused runs); empty: the method changes training itself and cannot fuse."""

    control_apart: ClassVar[str | None] = None
    """For a method that fuses but whose control runs cannot join their spaced cell's group (``control``
    is not one of its `fusable_keys`): why, as ``spacing plan`` says it. None: they join it, or nothing fuses."""

    def fusable(self) -> bool:
        """Whether this config can share its trajectory with others."""
        return bool(self.fusable_keys)

    def __post_init__(self) -> None:
        _require(
            self.interval >= 0 and not math.isnan(self.interval),
            f"method.interval must be >= 0 epochs (0 = massed, inf = offline KD); got {self.interval}.",
        )
        _require_choice(self.schedule, SCHEDULES, "method.schedule")
        _require(
            0 < self.random_max_gap < math.inf,
            f"method.random_max_gap must be a positive number of epochs; got {self.random_max_gap}.",
        )
        _require_choice(self.control, CONTROLS, "method.control")
        if self.control == "matched":
            _require(
                self.control_kind is not None,
                f"method.control=matched: {self.name} has no control run (see docs/controls.md); use method.control=none.",
            )
            _require(
                self.schedule == "random" or 0 < self.interval < math.inf,
                f"method.control=matched controls a spaced cell (0 < method.interval < inf, or method.schedule=random); "
                f"got method.interval={self.interval}: a massed cell is its own control, use method.control=none.",
            )
            refused = self.control_refused()
            _require(refused is None, str(refused))

    def control_refused(self) -> str | None:
        """Why this spaced cell has no control although its method has one (the fix, as a sentence); None: it has one."""
        return None

    def matched_control(self, schedule: Schedule) -> MethodConfig:
        """The massed config that controls this spaced cell, whose refreshes follow `schedule`."""
        raise NotImplementedError(f"{type(self).__name__} declares no control")

    def _massed(self, **strength: Any) -> Any:
        """This config as an ordinary massed run with `strength` changed: what a control run trains."""
        return dataclasses.replace(self, interval=0.0, schedule="periodic", control="none", **strength)


@dataclass
class BaselineConfig(MethodConfig):
    """Plain cross-entropy training of one model: the reference for every spaced method."""

    name: str = "baseline"


@dataclass
class DropoutConfig(MethodConfig):
    """Spaced dropout after every stage (neuronal level): the rate follows the schedule (strength `p`);
    interval 0 is standard dropout."""

    name: str = "dropout"
    p: float = 0.5
    """Dropout rate at full strength; the schedule's multiplier scales it."""
    variant: str = "standard"
    """standard (zero random units, rescale), max (zero the most active units), cutout (input-level holes)."""
    max_scope: str = "sample"
    """variant=max: the min and max that normalise the activations are taken per sample, or over
    the whole batch tensor (the paper's MaxDropout)."""
    cutout_size: int = 4
    """Largest cutout hole side in pixels, for variant=cutout (its strength then is this length)."""
    paper_cutout: bool = False
    """variant=cutout as the paper's Cutout_input: one hole position for the whole batch, side
    int(cutout_size * |sin(pi t / (interval * steps_per_epoch))|) with the unrounded period."""
    eval_dropout: bool = False
    """The paper's code kept dropout on at test time and advanced its step counter on test forwards
    (validation forwards never advance it)."""
    eval_bn: str = "recompute"
    """BatchNorm statistics the model is evaluated with: recompute (the exact statistics of the
    network as evaluated, i.e. without dropout unless eval_dropout, on `recompute_batches` train
    batches before each evaluation) or running (those gathered in training under dropout, as the
    paper's code: their variance shift with the rate at the end of the epoch, see docs/controls.md,
    Defaults that could make or hide an effect)."""
    recompute_batches: int = 20
    """Train batches of the epoch on which BatchNorm statistics are recomputed before each evaluation
    (with `eval_bn=recompute`)."""

    control_kind: ClassVar[str | None] = "matched_rate"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.p < 1.0, f"method.p must be in [0, 1); got {self.p}.")
        _require_choice(self.variant, DROPOUT_VARIANTS, "method.variant")
        _require_choice(self.max_scope, MAX_SCOPES, "method.max_scope")
        _require(self.cutout_size >= 1, f"method.cutout_size must be >= 1 pixel; got {self.cutout_size}.")
        _require_choice(self.eval_bn, EVAL_BN, "method.eval_bn")
        _require(self.recompute_batches >= 1, f"method.recompute_batches must be >= 1; got {self.recompute_batches}.")

    def matched_control(self, schedule: Schedule) -> DropoutConfig:
        """Constant dropout at the schedule's mean rate: p * mean multiplier (2p/pi periodic, p/2 random).

        `standard` drops a fraction `rate` of the units, so the mean rate is the mean fraction dropped;
        `max` takes the same rate (its dropped fraction depends on the activations). A cutout hole
        removes an area that grows with the square of its side, so `cutout` keeps the mean hole area:
        side cutout_size * sqrt(mean multiplier^2) (L / sqrt(2) periodic, L / sqrt(3) random), rounded
        to whole pixels.
        """
        if self.variant == "cutout":
            side = round(self.cutout_size * math.sqrt(schedule.mean_multiplier(2)))
            return self._massed(cutout_size=max(1, side))
        return self._massed(p=self.p * schedule.mean_multiplier())


@dataclass
class EmaConfig(MethodConfig):
    """Spaced EMA (synaptic level): a shadow copy averaged towards the model at every refresh
    (strength `decay`); interval 0 is ordinary EMA."""

    name: str = "ema"
    decay: float = 0.999
    """Weight of the old shadow at each refresh:
    `theta_ema <- decay * theta_ema + (1 - decay) * theta`."""
    buffers: str = "recompute"
    """BatchNorm running stats of the shadow: recompute (the statistics of the shadow's own weights,
    from train batches before each evaluation, as SWA), average (like the weights: wrong when the
    shadow is refreshed rarely, see docs/methods.md), copy (from the model), or none (never updated: the
    paper's parameters-only average)."""
    recompute_batches: int = 20
    """Train batches of the epoch on which the shadow's BatchNorm statistics are recomputed before each
    evaluation (with `buffers=recompute`)."""
    eval_train_mode: bool = False
    """The paper's code evaluated both models in train mode (batch statistics on test batches)."""

    control_kind: ClassVar[str | None] = "matched_horizon"
    fusable_keys: ClassVar[tuple[str, ...]] = ("interval", "decay", "schedule", "control")

    def matched_control(self, schedule: Schedule) -> EmaConfig:
        """Massed EMA over the same horizon: decay d every S steps averages over about S / (1 - d)
        steps, massed decay d' over 1 / (1 - d'), so d' = 1 - (1 - d) / S (S: the mean gap between refreshes)."""
        return self._massed(decay=1.0 - (1.0 - self.decay) / schedule.mean_gap())

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.decay < 1.0, f"method.decay must be in [0, 1); got {self.decay}.")
        _require_choice(self.buffers, EMA_BUFFERS, "method.buffers")
        _require(self.recompute_batches >= 1, f"method.recompute_batches must be >= 1; got {self.recompute_batches}.")


@dataclass
class DistillConfig(MethodConfig):
    """What online and self KD share: loss weights and how kept batches are replayed."""

    alpha: float = 0.3
    """Weight of the soft (teacher) loss; the hard cross-entropy gets 1 - alpha."""
    temperature: float = 3.0
    """Softmax temperature T of the soft loss."""
    beta: float = 0.03
    """Weight of the feature loss (L2 norm of the feature difference over the batch)."""
    soft_loss: str = "kl"
    """kl: KL(teacher || student) on log-softmax at temperature T, times T^2; softce: soft
    cross-entropy -sum softmax(teacher/T) * log_softmax(student/T), no T^2 (the self KD script);
    paper: softmax probabilities fed to KL-div, no T^2 (the online KD script)."""
    replay: str = "lagged"
    """lagged: each batch is distilled exactly S teacher steps after the teacher learned from it;
    rounds: every S steps all kept batches are distilled in a burst (the papers' code)."""
    late_counter: bool = False
    """With replay=rounds: the refresh counter starts one epoch late, so rounds fall at
    (t + 1 - steps_per_epoch) % S == 0 (the self KD script)."""
    distill_tail: bool = True
    """Distil the batches still kept when training ends (the papers' code dropped them)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.alpha <= 1.0, f"method.alpha must be in [0, 1]; got {self.alpha}.")
        _require(self.temperature > 0, f"method.temperature must be > 0; got {self.temperature}.")
        _require(self.beta >= 0, f"method.beta must be >= 0; got {self.beta}.")
        _require_choice(self.soft_loss, SOFT_LOSSES, "method.soft_loss")
        _require_choice(self.replay, REPLAYS, "method.replay")
        _require(
            not self.late_counter or (self.replay == "rounds" and self.schedule == "periodic"),
            "method.late_counter=true shifts the rounds of a periodic schedule; "
            "set method.replay=rounds and method.schedule=periodic.",
        )


@dataclass
class OnlineKDConfig(DistillConfig):
    """Online KD: a teacher and a student trained on one stream; the student replays it S steps late
    (the matched-lead control gives the teacher a stream of its own, see `teacher_lead`).

    interval=inf is offline KD: the teacher trains all its epochs first, then the student trains
    as many against the frozen teacher (a run of 2 x trainer.epochs epochs); interval 0 is
    ordinary online KD.
    """

    name: str = "online_kd"
    teacher: str | None = None
    """Teacher architecture (a model name); null: the run's model."""
    student: str | None = None
    """Student architecture (a model name); null: the run's model."""
    projection_hidden: int | None = None
    """Hidden width of the student's feature projection; null: (student width + teacher width) // 2, as the paper."""
    replay_teacher_bn: bool = False
    """The teacher's forwards of replayed batches update its BatchNorm running statistics (the
    paper's teacher ran them in train mode, so each batch counts twice)."""
    teacher_lead: int = 0
    """Massed online KD (interval 0) with a teacher this many steps ahead of the student on its own
    data stream (`teacher_stream`): the matched-lead control of a spaced cell, which
    ``method.control=matched`` sets to that cell's S. 0: ordinary online KD."""
    teacher_stream: str = "own"
    """With a teacher lead: the teacher reads the training split in its own order, derived from the
    run's seed (own), or the student's stream (student). ``student`` is a diagnostic and test switch,
    not an experiment: the control then trains exactly as its spaced (lagged) cell, which shows that
    the stream is the only difference between the two."""

    control_kind: ClassVar[str | None] = "matched_lead"
    fusable_keys: ClassVar[tuple[str, ...]] = ("interval", "schedule")
    control_apart: ClassVar[str | None] = (
        "a control's teacher reads its own data stream, not its spaced cell's, so it shares no trajectory with that "
        "cell's group; the controls of one seed share one teacher and fuse with each other"
    )

    def fusable(self) -> bool:
        """Not with replay_teacher_bn: each student's replays would move the one teacher's BatchNorm statistics."""
        return super().fusable() and not self.replay_teacher_bn

    def control_refused(self) -> str | None:
        """The matched-lead control holds one lead, S steps, on every batch: that of lagged replay on a periodic
        schedule. Rounds (and the random schedule, which replays in rounds) distil with leads from S - 1 down to
        0, so no constant lead matches them."""
        if self.schedule == "periodic" and self.replay == "lagged":
            return None
        return ("method.control=matched for online_kd is the matched-lead control of lagged replay on a periodic "
                "schedule (a lead of S steps on every batch); set method.replay=lagged and method.schedule=periodic.")

    def matched_control(self, schedule: Schedule) -> OnlineKDConfig:
        """Massed online KD whose teacher is the spaced cell's S steps ahead, on its own data stream.

        The spaced student distils each batch S teacher steps after the teacher learned that very
        batch: the teacher is S steps ahead (a better teacher) *and* the batch is spaced. The control
        keeps the lead and removes the spacing: its teacher reads the training split in its own
        seed-derived order, S steps ahead of a student that distils each of its batches once, fresh.

        The lead is held by the student lagging S steps behind the run's steps (its batches pass the
        lagged queue as indices; none is seen twice), not by a teacher trained S steps before the run
        starts: so every distillation, evaluation, LR step and the end-of-training tail (the last S
        batches, distilled from the final teacher with leads S - 1 to 0, or dropped with
        distill_tail=false) fall exactly where the spaced cell's do, and the teacher takes as many
        steps. The stream is then the only difference (``teacher_stream=student`` shows it).
        """
        return self._massed(teacher_lead=int(schedule.period))

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.projection_hidden is None or self.projection_hidden >= 1,
            f"method.projection_hidden must be >= 1 (null: derived); got {self.projection_hidden}.",
        )
        _require(self.teacher_lead >= 0, f"method.teacher_lead must be >= 0 steps (0: none); got {self.teacher_lead}.")
        _require_choice(self.teacher_stream, TEACHER_STREAMS, "method.teacher_stream")
        _require(
            self.teacher_lead == 0 or (self.interval == 0 and self.schedule == "periodic" and self.control == "none"),
            "method.teacher_lead holds the teacher of massed online KD (method.interval=0) ahead on its own stream; "
            "a spaced cell's lead is its interval, and method.control=matched sets the lead itself: drop method.teacher_lead.",
        )
        _require(
            self.teacher_stream == "own" or self.teacher_lead > 0 or self.control == "matched",
            "method.teacher_stream=student applies to a teacher ahead on a stream of its own (method.teacher_lead > 0, "
            "or method.control=matched); drop it.",
        )


@dataclass
class SelfKDConfig(DistillConfig):
    """Self KD (Be Your Own Teacher, network level): the deepest exit teaches an exit on every
    shallower stage; interval 0 is ordinary self distillation."""

    name: str = "self_kd"
    ensemble: str = "probs"
    """The `ensemble` target averages the exits' softmax probabilities (probs) or their logits (the paper)."""
    feature_loss: str = "all"
    """all: every shallow exit's feature is pulled to the deepest one; paper: every shallow exit but
    the deepest shallow one (the two shallowest of four), each through a trained Linear adapter."""
    fresh_steps: str = "deepest"
    """deepest: a fresh batch trains the deepest exit's cross-entropy on the backbone alone; paper:
    it is forwarded through every exit (their BatchNorm statistics see it) and the fresh batch of a
    refresh step is only forwarded, not trained: it is distilled in that step's round."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_choice(self.ensemble, ENSEMBLES, "method.ensemble")
        _require_choice(self.feature_loss, FEATURE_LOSSES, "method.feature_loss")
        _require_choice(self.fresh_steps, FRESH_STEPS, "method.fresh_steps")


@dataclass
class TrainerConfig:
    """The optimisation recipe shared by all methods (paper: SGD 0.9, wd 5e-4, lr 0.01)."""

    epochs: int = 10
    """Training epochs (an offline KD run trains twice as many: the teacher's, then the student's)."""
    batch_size: int = 128
    """Training batch size."""
    eval_batch_size: int = 512
    """Batch size of validation and test forwards; it changes the numbers only with
    `method.eval_dropout` or `method.eval_train_mode`."""
    lr: float = 0.01
    """SGD learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """SGD weight decay."""
    nesterov: bool = False
    """Nesterov momentum (the dropout script's)."""
    lr_schedule: str = "constant"
    """Stepped once per epoch: constant, multistep (times `gamma` at each of `milestones`), cosine (to 0
    over the run)."""
    milestones: list[int] = field(default_factory=lambda: [60, 120, 160])
    """Epochs at which `lr_schedule=multistep` multiplies the lr by `gamma`."""
    gamma: float = 0.2
    """Factor of each multistep decay."""
    device: str = "auto"
    """auto (a GPU no other run here holds, else the CPU), cpu, cuda, or cuda:N."""
    log_every: int = 20
    """Steps between progress-bar updates, NaN checks and tracker reads (each a host sync on a GPU)."""
    resume: bool = True
    """Resume from the run dir's checkpoint when there is one; false: start over."""
    keep_checkpoint: bool = False
    """Keep `checkpoint.pt` after the run completes."""
    precision: str = "auto"
    """Autocast dtype: auto (bf16 on a GPU that has it, else fp16 on GPU; fp32 on CPU), fp32, bf16, fp16."""
    channels_last: str = "auto"
    """Memory format of models and inputs: auto (on for GPU, off for CPU), true, false."""
    compile: bool = False
    """torch.compile each model's entry points (forward, features, stage outputs, self-KD exits) as whole graphs."""
    threads: int | None = None
    """torch's CPU thread count; null: the launcher's share, $SLURM_CPUS_PER_TASK in a SLURM task or the
    CPUs / n_jobs in a local-launcher worker, divided by the cells per task; else torch's default where
    $OMP_NUM_THREADS is set; else the CPUs free to the process when the run starts: those it may run
    on, less those other processes keep busy (spacing.cpus.free_cpus; see spacing.cli.thread_count)."""

    def __post_init__(self) -> None:
        self.channels_last = str(self.channels_last).lower()
        _require_choice(self.precision, PRECISIONS, "trainer.precision")
        _require_choice(self.channels_last, SWITCHES, "trainer.channels_last")
        _require(self.epochs >= 1, f"trainer.epochs must be >= 1; got {self.epochs}.")
        _require(self.batch_size >= 1, f"trainer.batch_size must be >= 1; got {self.batch_size}.")
        _require(self.eval_batch_size >= 1, f"trainer.eval_batch_size must be >= 1; got {self.eval_batch_size}.")
        _require(0 < self.lr < math.inf, f"trainer.lr must be a finite number > 0; got {self.lr}.")
        _require(0 <= self.momentum < 1, f"trainer.momentum must be in [0, 1); got {self.momentum}.")
        _require(
            0 <= self.weight_decay < math.inf,
            f"trainer.weight_decay must be a finite number >= 0; got {self.weight_decay}.",
        )
        _require(
            not self.nesterov or self.momentum > 0,
            "trainer.nesterov=true needs trainer.momentum > 0.",
        )
        _require_choice(self.lr_schedule, LR_SCHEDULES, "trainer.lr_schedule")
        _require(
            all(m >= 1 for m in self.milestones),
            f"trainer.milestones must be epochs >= 1; got {list(self.milestones)}.",
        )
        _require(0 < self.gamma <= 1, f"trainer.gamma must be in (0, 1]; got {self.gamma}.")
        _require(
            self.device in DEVICES or self.device.startswith("cuda:"),
            f"trainer.device must be one of {', '.join(DEVICES)} (or cuda:N); got '{self.device}'.",
        )
        _require(self.log_every >= 1, f"trainer.log_every must be >= 1; got {self.log_every}.")
        _require(self.threads is None or self.threads >= 1, f"trainer.threads must be >= 1 (or null); got {self.threads}.")


@dataclass
class TensorBoardConfig:
    """TensorBoard event files in ``<run dir>/tensorboard/<run name>``."""

    enabled: bool = False
    """Send the run to TensorBoard (`logger=tensorboard` sets it)."""


@dataclass
class WandbConfig:
    """Weights & Biases; `offline` writes ``<run dir>/wandb/offline-run-*`` for ``wandb sync`` later."""

    enabled: bool = False
    """Send the run to Weights & Biases (`logger=wandb` sets it)."""
    project: str = "spacing"
    """W&B project."""
    entity: str | None = None
    """W&B entity (user or team); null: your default."""
    mode: str = "offline"
    """offline (files for `wandb sync` later) or online."""

    def __post_init__(self) -> None:
        _require_choice(self.mode, WANDB_MODES, "logger.wandb.mode")


@dataclass
class MlflowConfig:
    """MLflow (see docs/tracking.md for what it receives and where its store lands)."""

    enabled: bool = False
    """Send the run to MLflow (`logger=mlflow` sets it)."""
    tracking_uri: str | None = None
    """MLflow tracking server; null: a local SQLite store in the sweep dir (the run dir for a single
    run)."""


@dataclass
class LoggerConfig:
    """Experiment trackers that receive each run (any number at once; result.json is written regardless).

    Train loss and lr are sent every `trainer.log_every` steps.
    """

    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    group: str | None = None
    """Name of the set of runs a tracker shows together (W&B group, MLflow experiment, `sweep` tag);
    null: the sweep dir's name in a multirun, none for a single run."""


@dataclass
class ObjectiveConfig:
    """What a run returns to a Hydra sweeper (Optuna, Nevergrad, Ax): one validation metric of one target
    (model selection never looks at test)."""

    metric: str = "val_acc"
    """The validation metric a run returns to a Hydra sweeper: val_acc (final epoch) or best_val_acc.
    Never a test metric."""
    target: str | None = None
    """The target it is read from; null: the method's main target."""

    def __post_init__(self) -> None:
        _require_choice(self.metric, VALIDATION_METRICS, "objective.metric")


@dataclass
class Config:
    """One run: data x model x method x trainer, and the seed of everything random."""

    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    method: MethodConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    seed: int = 0
    """Seeds python, numpy and torch: the initial weights, the data order and every random draw of a
    schedule."""
    fused_cells: list[dict[str, Any]] = field(default_factory=list)
    """Set by the grid sweeper (``hydra.sweeper.fuse=true``), not by hand: this job is a fused group,
    and each entry is one of its cells, as the values of the method's fusable keys in which the
    group's cells differ (``{interval: 0.5, decay: 0.99}``); each cell is this config with them set
    (:func:`spacing.sweeper.group_cells`). [] (the default): the run is one cell. A neutral key
    (:mod:`spacing.neutral`): no cell's dir or record depends on it."""

    def __post_init__(self) -> None:
        _require(0 <= self.seed <= MAX_SEED, f"seed must be an integer in [0, {MAX_SEED}]; got {self.seed}.")
        if isinstance(self.method, MethodConfig):
            _require(
                math.isinf(self.method.interval) or self.method.interval <= MAX_INTERVAL,
                f"method.interval must be at most {MAX_INTERVAL:g} epochs, or inf (offline KD); got {self.method.interval:g}.",
            )
            self._check_fused_cells(self.method)

    def _check_fused_cells(self, method: MethodConfig) -> None:
        """A fused group's cells may differ only in keys the method fuses, and the config must fuse at all."""
        if not self.fused_cells:
            return
        _require(
            method.fusable(),
            f"fused_cells: this {method.name} config cannot share its training trajectory (see docs/sweeps.md, "
            "Fused cells); run its cells unfused (hydra.sweeper.fuse=false).",
        )
        for cell in self.fused_cells:
            for key in cell:
                _require(
                    key in method.fusable_keys,
                    f"fused_cells: method.{key} is not a key {method.name} fuses (its cells may differ only in "
                    f"{', '.join('method.' + k for k in method.fusable_keys)}); run these cells unfused.",
                )


def method_schemas() -> dict[str, type[MethodConfig]]:
    """Every method's config by method name: the subclasses of MethodConfig whose `name` has a default.

    The one list of methods a config can name; :mod:`spacing.methods` pairs each with the strategy
    that declares it as its ``config``.
    """
    found: dict[str, type[MethodConfig]] = {}
    pending: list[type[MethodConfig]] = [MethodConfig]
    while pending:
        schema = pending.pop(0)
        pending.extend(schema.__subclasses__())
        name = next(f.default for f in dataclasses.fields(schema) if f.name == "name")
        if name != MISSING:
            found[str(name)] = schema
    return found


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base": DatasetConfig, "synthetic": SyntheticDatasetConfig},
    "model": {"base": ModelConfig},
    "method": {"base": MethodConfig, **method_schemas()},
    "trainer": {"base": TrainerConfig},
}
"""Schemas per config group, registered as ``schema/<group>/<name>`` for YAML options to extend."""


def to_config(cfg: DictConfig | Config) -> Config:
    """Turn a composed config into checked dataclass objects (runs every ``__post_init__``)."""
    if isinstance(cfg, Config):
        return cfg
    _reject_unknown_keys(cfg, "")
    try:
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ConfigError) else None
        if cause is not None:
            raise cause from None
        raise ConfigError(f"invalid config: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(config, Config):
        raise ConfigError("the composed config is not a spacing Config; start from conf/config.yaml.")
    return config


def _reject_unknown_keys(node: DictConfig, prefix: str) -> None:
    """Refuse keys a schema does not declare (Hydra lets ``+key=value`` add them to typed nodes)."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        known = {f.name for f in dataclasses.fields(schema)}
        for key in node.keys():
            if key not in known:
                raise ConfigError(
                    f"unknown key '{prefix}{key}'; valid keys under {prefix.rstrip('.') or 'the top level'}: "
                    f"{', '.join(sorted(known))}."
                )
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _reject_unknown_keys(child, f"{prefix}{key}.")


def to_dict(cfg: DictConfig | Config) -> dict[str, Any]:
    """Plain resolved dict of a config, as stored in the run record."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"trainer": {"lr": 0.01}}`` -> ``{"trainer.lr": 0.01}``: a config dict by dotted key
    (for trackers with flat hyperparameters, and for naming the keys two configs differ in)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
