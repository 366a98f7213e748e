"""The parameters of ``train`` and ``finetune``, each declared once (see :mod:`hwr.config.params`):
the data set, the CRNN's geometry and layers, and the training run. Also the CTC frame count,
computed here once for the model builder, the data checks and every text that states it.

Knows nothing of MLflow or TensorFlow, so a configuration is checked before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hwr.config.params import (COUNT, FRACTION, LEARNING_RATE, MINUTES, NON_NEGATIVE, NOT_BLANK, POSITIVE, Config,
                               int_list_text, param, parse_bool, parse_int_list, same_as)
from hwr.errors import ConfigError

ACTIVATIONS = ("relu", "elu", "gelu", "swish", "tanh", "leaky_relu")
BAD_INPUT_POLICIES = ("error", "skip")
DATA_FORMATS = ("auto", "csv", "pagexml", "alto")
SPLIT_GROUPS = ("page", "document")
LINE_FILLS = ("background", "white")
SPLITS = ("train", "val", "test")
SHAPES = ("auto", "fixed", "true")
CONV_BLOCKS = ("plain", "pool_first", "residual")  # each convolution block, its max-pool included
HEIGHT_POOLS = ("flatten", "max")  # how a column of the convolutions' output becomes one feature vector
SEQUENCES = ("bilstm2", "bilstm1", "conv")  # the sequence layers between the dense layer and the softmax
WIDTH_POOLED_BLOCKS = 2  # the first two conv blocks halve the width (and height); later ones only the height


def width_stride(n_blocks: int) -> int:
    """Input pixels of width per CTC frame for a CRNN with ``n_blocks`` conv blocks (1 block: 2,
    2 or more: 4)."""
    return 2 ** min(n_blocks, WIDTH_POOLED_BLOCKS)


def ctc_frames(img_width: int, n_blocks: int) -> int:
    """CTC output frames of a CRNN with ``n_blocks`` conv blocks for ``img_width`` input pixels."""
    return img_width // width_stride(n_blocks)


def frames_formula(n_blocks: int) -> str:
    """The frame count as a user reads it, e.g. ``img_width / 4`` (for error messages and help)."""
    return f"img_width / {width_stride(n_blocks)}"


DEFAULT_FILTERS = (16, 32, 64)
DEFAULT_MINUTES = 28.0  # train's time budget: a DHSD words run, test and registration included, in 30 minutes
FRAMES_HELP = (f"the model emits {frames_formula(len(DEFAULT_FILTERS))} CTC frames "
               f"({frames_formula(1)} with one conv block), and a label needs its length plus one "
               "frame per doubled letter")


@dataclass(frozen=True)
class DataConfig(Config):
    """The data set: where the labelled images are and how to read them."""

    data: str = param("../shared/data/dhsd", "image folder; image paths in the labels CSV are relative to it",
                      rule=NOT_BLANK)
    labels: str = param("labels.csv", "labels CSV (a relative path is inside `data`)", rule=NOT_BLANK)
    image_col: str = param("image", "CSV column with the image path, relative to `data` (paths leaving it "
                                    "are rejected)", rule=NOT_BLANK)
    text_col: str = param("text", "CSV column with the transcription (non-empty)", rule=NOT_BLANK)
    split_col: str = param("split", "optional CSV column with train/val/test; without it a seeded random "
                                    "split is made (`val_fraction`, `test_fraction`, `seed`) and logged as "
                                    "split.csv")
    val_fraction: float = param(0.1, "fraction of rows for val when the CSV has no split column", rule=FRACTION)
    test_fraction: float = param(0.1, "fraction of rows for test when the CSV has no split column", rule=FRACTION)
    on_bad_input: str = param("error", "`error`: stop at the first bad row, naming it; `skip`: count the "
                                       "bad rows (metric skipped_rows), list them (bad_inputs.csv) and go on",
                              choices=BAD_INPUT_POLICIES)
    max_per_split: int = param(0, "use only the first N rows of each split (0 = all), for quick runs", rule=COUNT)
    format: str = param("auto", "`csv`: a labels CSV and images; `pagexml` / `alto`: page scans with PAGE-XML "
                                "(2013, 2019) or ALTO (v2-v4) files beside them, each text line with a "
                                "transcription a sample; `auto`: csv when the labels CSV exists, else the "
                                "format of the folder's .xml files", choices=DATA_FORMATS)
    split_by: str = param("page", "pages only: draw the seeded split by `page` or by `document` (the page "
                                  "file's folder; pages in `data` itself are each their own document)",
                          choices=SPLIT_GROUPS)
    split_file: str = param("", "pages only: a CSV with columns page (file name without .xml) or document, "
                                "and split (train/val/test), instead of a drawn split")
    deskew: bool = param(True, "pages only: rotate each cut line so that its baseline is level "
                               "(true/false)", parse=parse_bool)
    line_fill: str = param("background", "pages only: fill outside a line's polygon with the page's "
                                         "`background` grey (its median) or `white`", choices=LINE_FILLS)
    line_cache: str = param("~/.cache/hwr/lines", "pages only: folder where cut lines are kept for the next "
                                                  "run (keyed by the page file, its image and the cutting "
                                                  "settings)", rule=NOT_BLANK)
    allow_links_outside: bool = param(False, "follow image paths that are symbolic links pointing outside the "
                                             "data folder (for archives that keep their images behind links); "
                                             "by default such a row is refused like a path with `..` or an "
                                             "absolute path (true/false)", parse=parse_bool)

    def labels_path(self) -> Path:
        path = Path(self.labels)
        return path if path.is_absolute() else Path(self.data) / path

    def check(self) -> None:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction + test_fraction must leave rows for training")


@dataclass(frozen=True)
class ModelConfig(Config):
    """The CRNN: input geometry, convolution blocks, dense layer, bidirectional LSTMs.

    The input is ``(img_height, img_width, 1)``; width is the time axis. Each convolution block
    halves the height; the first :data:`WIDTH_POOLED_BLOCKS` also halve the width, so the model
    emits :func:`ctc_frames` frames (:attr:`time_steps`).
    """

    shape: str = param("auto", "`fixed`: every image is scaled to img_height and padded (or squeezed) to "
                               "img_width; `true`: images keep their aspect ratio at img_height, up to img_width "
                               "(wider ones are squeezed to it), and are batched with images of similar width; "
                               "`auto`: `train` looks at the training images: lines (median width over height "
                               "at least 5) get `true` with img_height and img_width picked from the data "
                               "(each unless set to another value than its default), words get `fixed`; what "
                               "was picked is logged as picked.shape, picked.img_height, picked.img_width",
                       choices=SHAPES)
    img_height: int = param(40, "model input height in pixels (images are scaled to it, keeping their "
                                "aspect ratio); a multiple of 2**len(conv_filters)", rule=POSITIVE)
    img_width: int = param(160, f"model input width in pixels, the widest image with shape=true (narrower images "
                                f"are padded, wider ones squeezed); {FRAMES_HELP}", rule=POSITIVE)
    conv_filters: tuple[int, ...] = param(DEFAULT_FILTERS, "filters of each convolution block (see "
                                                           "conv_block), comma-separated",
                                          parse=lambda t: parse_int_list(t, "conv_filters"), text=int_list_text)
    conv_block: str = param("plain", "each convolution block: `plain`: conv, batch norm, activation, max pooling; "
                                     "`pool_first`: conv, max pooling, batch norm, activation (the normalisation and "
                                     "activation see the pooled map, a quarter of the values); `residual`: He et "
                                     "al.'s basic block (two convs with batch norm, added to a 1x1 conv of the "
                                     "block's input, then the activation), then the max pooling: half the training "
                                     "samples/s; in 10 equal minutes level on DHSD words (test CER 0.132 against "
                                     "0.138), behind on Hooker lines (0.494 against 0.456) (docs/performance.md)",
                            choices=CONV_BLOCKS)
    height_pool: str = param("max", "how each column of the convolutions' output feeds the dense layer: `max`: "
                                    "each channel's largest value over the height (Retsinas et al. 2022's column "
                                    "max pooling); `flatten` (the default until 2026-12-07): its height x channels "
                                    "values. In full runs `max` was ahead on test: DHSD 0.109 against 0.113, Hooker "
                                    "0.329 against 0.345, 7 % more samples/s on words (docs/performance.md)",
                           choices=HEIGHT_POOLS)
    kernel_size: int = param(3, "convolution kernel size in pixels", rule=POSITIVE)
    activation: str = param("relu", "activation of the convolution and dense layers", choices=ACTIVATIONS)
    dense_units: int = param(128, "units of the dense layer between the convolutions and the LSTMs",
                             rule=POSITIVE)
    dropout: float = param(0.25, "dropout rate after the dense layer and between the LSTMs", rule=FRACTION)
    sequence: str = param("bilstm2", "the sequence layers between the dense layer and the softmax: `bilstm2`: two "
                                 "bidirectional LSTMs (lstm1_units, lstm2_units); `bilstm1`: the first only; "
                                 "`conv`: two residual 1-D convolutions over the frames (kernel 5, dense_units "
                                 "channels), no recurrence", choices=SEQUENCES)
    lstm1_units: int = param(64, "units per direction of the first bidirectional LSTM (sequence bilstm2 or bilstm1)",
                             rule=POSITIVE)
    lstm2_units: int = param(64, "units per direction of the second bidirectional LSTM (sequence bilstm2)",
                             rule=POSITIVE)
    aux_ctc: float = param(0.0, "weight of an auxiliary CTC loss on a second softmax read off the dense layer's "
                                "features by a 1-D convolution (kernel 3), during training only (the CTC shortcut "
                                "of Retsinas et al. 2022, who weight it 0.1); 0 = none (0.1 gained nothing in 10 DHSD "
                                "minutes, docs/performance.md)", rule=FRACTION)
    bn_momentum: float = param(0.9, "momentum of the batch normalisations' moving mean and variance (after each "
                                    "convolution): each step keeps this share of the old statistics. Lower values "
                                    "follow fast-moving weights sooner: 0.5 calmed the val CER's jumps between epochs "
                                    "(DHSD, 10 minutes: s.d. over minutes 5-10 0.011 against 0.055; 28 minutes: 1 "
                                    "epoch above 0.5 after minute 2 against 20) at a test CER level within noise "
                                    "(0.125 against 0.122 at 28 minutes); 0.99 (Keras' default) jumped more "
                                    "(docs/performance.md)",
                             rule=FRACTION)

    def check(self) -> None:
        stride = width_stride(len(self.conv_filters))
        if self.img_width % stride:
            raise ConfigError(f"img_width={self.img_width}: must be a multiple of {stride}")
        if self.img_height % (2 ** len(self.conv_filters)):
            raise ConfigError(f"img_height={self.img_height}: must be a multiple of 2**len(conv_filters)"
                              f" = {2 ** len(self.conv_filters)}")

    @property
    def true_width(self) -> bool:
        """Images keep their aspect ratio (``shape=true``); ``auto`` must be resolved first
        (:func:`hwr.data.geometry.pick_geometry`)."""
        return self.shape == "true"

    @property
    def width_stride(self) -> int:
        """Input pixels of width per CTC frame (:func:`width_stride`)."""
        return width_stride(len(self.conv_filters))

    @property
    def time_steps(self) -> int:
        """Number of CTC output frames the model emits for its widest image (:func:`ctc_frames`)."""
        return ctc_frames(self.img_width, len(self.conv_filters))

    @property
    def frames_formula(self) -> str:
        return frames_formula(len(self.conv_filters))


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything one ``train`` run needs: the data, the model and the training settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = param(4e-3, "peak Adam learning rate: with a time budget (max_minutes) it warms up to it, then "
                            "follows a cosine down to lr/20; without one it halves after every 3 epochs "
                            "without a better val_cer, down to lr/16 (4e-3 beat 2e-3, and 2e-3 beat 1e-3, in "
                            "10 equal minutes on DHSD words and Hooker lines, docs/performance.md)",
                      rule=LEARNING_RATE)
    weight_decay: float = param(0.0, "decoupled weight decay of AdamW (0 = plain Adam; 0.01 with clipnorm=5 gained "
                                        "nothing in 10 DHSD minutes, docs/performance.md)", rule=FRACTION)
    clipnorm: float = param(0.0, "scale each step's gradients down to at most this global L2 norm (0 = no "
                                 "clipping)", rule=NON_NEGATIVE)
    batch_size: int = param(32, "images per training step", rule=POSITIVE)
    epochs: int = param(200, "maximum epochs (with the default time budget a cap that DHSD words do not "
                             "reach on a 2-core CPU: about 95 epochs in 25 minutes)", rule=POSITIVE)
    max_minutes: float = param(DEFAULT_MINUTES, "training time of the run in minutes (0 = none): the learning rate "
                                                "warms up over the first 5 %, then follows a cosine down to lr/20 at "
                                                "the deadline, where training stops (within one batch) with the best "
                                                "epoch's weights; epochs still caps it, and a resumed run counts only "
                                                "the minutes trained. The default fits a DHSD words run, test "
                                                "included, into 30 minutes on a 2-core CPU", rule=MINUTES)
    patience: int = param(0, "stop after this many epochs without a better val_cer (0 = never: with a time "
                             "budget its schedule ends training; without one, e.g. 8)", rule=COUNT)
    seed: int = param(42, "seeds Python, NumPy, TensorFlow, the random split and the shuffle")
    augment: bool = param(True, "random slant, shrink, vertical shift and stroke thickening of training "
                                "images (true/false)", parse=parse_bool)
    model_name: str = param("hwr-crnn", "registered model name of the prediction (pyfunc) model", rule=NOT_BLANK)
    full_model_name: str = param("hwr-crnn-full", "registered model name of the full (trainable, with CTC "
                                                  "loss) model", rule=NOT_BLANK)
    register: bool = param(True, "register both models in the Model Registry (false: log them in the run "
                                 "only)", parse=parse_bool)
    system_metrics: bool = param(True, "log the machine's CPU, memory, disk and network use (and GPU, where one "
                                       "exists) as system/* metrics of the run, sampled every 10 s (true/false)",
                                 parse=parse_bool)
    resume_run_id: str = param("", "run id of an interrupted (killed, failed) run of this verb to continue in "
                                   "that same run from its last epoch checkpoint (empty: a new run); the other "
                                   "parameters must equal the run's, except the learning rates and "
                                   "system_metrics")


@dataclass(frozen=True)
class FinetuneConfig(Config):
    """Everything one ``finetune`` run needs: adapt a registered *full* model to new data in two
    phases (the head with the rest frozen, then every layer). The model's geometry and layers are
    the base model's, so the model parameters are not ``finetune``'s."""

    base_model: str = param("models:/hwr-crnn-full@champion",
                            "MLflow URI of the full model to start from: models:/NAME/VERSION, models:/NAME@alias "
                            "or runs:/RUN_ID/full_model (a prediction model such as models:/hwr-crnn/1 is "
                            "refused before any data is read)", rule=NOT_BLANK)
    data: DataConfig = field(default_factory=DataConfig)
    head_epochs: int = param(5, "phase 1: maximum epochs with the layers up to freeze_until frozen "
                                "(0 = skip phase 1)", rule=COUNT)
    head_lr: float = param(1e-3, "phase 1: Adam learning rate", rule=LEARNING_RATE)
    full_epochs: int = param(15, "phase 2: maximum epochs with every layer trainable (0 = skip phase 2)",
                             rule=COUNT)
    full_lr: float = param(1e-4, "phase 2: Adam learning rate (usually 10x lower than head_lr)",
                           rule=LEARNING_RATE)
    patience: int = param(5, "per phase: stop after this many epochs without a better val_cer (0 = never)",
                          rule=COUNT)
    max_minutes: float = param(0.0, "training time of the whole fine-tuning in minutes (0 = none): phase 1 runs "
                                    "its epochs, then phase 2 trains for the minutes left with train's schedule "
                                    "(full_lr warmed up to over the first 5 %, then a cosine down to full_lr/20 "
                                    "at the deadline) and stops there with the best epoch's weights; full_epochs "
                                    "still caps it. E.g. head_epochs=0 full_epochs=200 full_lr=0.004 "
                                    "max_minutes=42 trains a pretrained base model like train trains a new one",
                               rule=MINUTES)
    freeze_until: str = param("auto", "phase 1 freezes this layer and every layer before it; auto = the last "
                                      "layer with weights before the output layer (bilstm2 with the default "
                                      "sequence layers), so only the output layer trains. Layer names: conv1, "
                                      "bn1, ..., dense1, bilstm1, bilstm2, output; an unknown name gives an "
                                      "error listing them", rule=NOT_BLANK)
    batch_size: int = same_as(TrainConfig, "batch_size")
    seed: int = same_as(TrainConfig, "seed")
    augment: bool = same_as(TrainConfig, "augment")
    model_name: str = same_as(TrainConfig, "model_name")
    full_model_name: str = same_as(TrainConfig, "full_model_name")
    register: bool = same_as(TrainConfig, "register")
    system_metrics: bool = same_as(TrainConfig, "system_metrics")
    resume_run_id: str = same_as(TrainConfig, "resume_run_id")

    def check(self) -> None:
        if self.head_epochs + self.full_epochs == 0:
            raise ConfigError("head_epochs and full_epochs are both 0: nothing to train")

    def train_config(self, model: ModelConfig) -> TrainConfig:
        """The TrainConfig of the shared training steps (pipelines, registration) for ``model``."""
        return TrainConfig(data=self.data, model=model, lr=self.full_lr, batch_size=self.batch_size,
                           epochs=max(self.head_epochs + self.full_epochs, 1), max_minutes=0.0, patience=self.patience,
                           seed=self.seed, augment=self.augment, model_name=self.model_name,
                           full_model_name=self.full_model_name, register=self.register,
                           system_metrics=self.system_metrics)
