"""Train HiFill (§3.5, Algorithm 1) on a folder of photos or a TFDS dataset.

  python train.py --data_dir photos/ --model_dir runs/hifill --steps 100000

Run again with the same --model_dir to resume from its latest checkpoint.
TensorBoard: tensorboard --logdir runs/hifill/tensorboard
"""

import os
import sys

# Before anything imports TensorFlow: the CPU runtime settings of training, oneDNN on
# (TF_ENABLE_ONEDNN_OPTS=0 in the environment turns it off). Importing hifill_tf.training
# loads no TensorFlow: the packages import their heavy parts lazily.
from hifill_tf.training import cpu  # noqa: E402

cpu.configure()

from absl import app, flags  # noqa: E402

# TensorFlow loads only once the flags are checked (hifill_tf.training.trainer imports it):
# --help and a bad configuration answer in a fraction of a second.
from hifill_tf.training.config import DEFAULTS as D, TrainingError, check_config  # noqa: E402
FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "Folder of training photos (searched recursively: jpg, png, webp).")
flags.DEFINE_string("dataset", None, "Instead of --data_dir: tfds:NAME[:SPLIT], a prepared tensorflow-datasets dataset.")
flags.DEFINE_string("tfds_data_dir", None, "data_dir of tensorflow-datasets (where the prepared dataset lives).")
flags.DEFINE_string("model_dir", None, "Where checkpoints, config.json and TensorBoard logs go; resumes if it holds a checkpoint.")
flags.DEFINE_integer("image_size", D["image_size"], "Training crop size in pixels, a multiple of 64 (paper: 512).")
flags.DEFINE_integer("batch_size", D["batch_size"], "Global batch size, split over replicas (paper: 8).")
flags.DEFINE_integer("steps", D["steps"], "Total generator updates to train for (resumed runs count from the checkpoint).")
flags.DEFINE_enum("mode", D["mode"], ["crop", "resize"], "crop: random crops (Places2 style); resize: whole photo resized (CelebA-HQ / DIV2K style).")
flags.DEFINE_integer("factor_min", D["factor_min"], "With crop: smallest averaging factor f of a training view (1 = native-resolution texture). Each view is a window of about f x image_size photo pixels averaged f x f down, exactly as inference reduces a photo.")
flags.DEFINE_integer("factor_max", D["factor_max"], "Largest averaging factor f (unset: as large as each photo allows, i.e. nearly its whole short side).")
flags.DEFINE_bool("color_augment", D["color_augment"], "Permute each crop's RGB channels at random and make 15% grey, so a model trained on few photos takes colour from the context instead of learning their palettes.")
flags.DEFINE_float("g_lr", D["g_lr"], "Generator learning rate (Adam).")
flags.DEFINE_float("d_lr", D["d_lr"], "Critic learning rate (Adam).")
flags.DEFINE_float("beta_1", D["beta_1"], "Adam beta_1 (WGAN-GP: 0.5).")
flags.DEFINE_float("beta_2", D["beta_2"], "Adam beta_2 (WGAN-GP: 0.9).")
flags.DEFINE_integer("critic_steps", D["critic_steps"], "Critic updates per generator update (Algorithm 1: 5).")
flags.DEFINE_float("gp_weight", D["gp_weight"], "Gradient-penalty weight sigma of Eq. 9.")
flags.DEFINE_float("hole_weight", D["hole_weight"], "alpha_1 of Eq. 13 (in-hole L1).")
flags.DEFINE_float("context_weight", D["context_weight"], "alpha_2 of Eq. 13 (context L1).")
flags.DEFINE_float("adversarial_weight", D["adversarial_weight"], "beta of Eq. 14; 0 = reconstruction only, no critic (a warm-up).")
flags.DEFINE_float("coarse_weight", D["coarse_weight"], "Weight of the coarse output's reconstruction loss.")
flags.DEFINE_enum("coarse_gate", D["coarse_gate"], ["full", "ds", "pw", "sc"], "Gate of the coarse network (paper: sc).")
flags.DEFINE_enum("refine_gate", D["refine_gate"], ["full", "ds", "pw", "sc"], "Gate of the refine network (paper: pw).")
flags.DEFINE_enum("mask_kind", D["mask_kind"], ["free_form", "object", "mixed", "either"], "Training holes: strokes, object shapes, both in one mask, or one of them per mask.")
flags.DEFINE_float("min_area", D["min_area"], "Smallest hole, as a fraction of the image.")
flags.DEFINE_float("max_area", D["max_area"], "Largest hole, as a fraction of the image (paper: 0.25).")
flags.DEFINE_string("mask_templates_dir", D["mask_templates_dir"], "Folder of binary object masks (PNG, white = object) for object-shaped holes; default: built-in random silhouettes.")
flags.DEFINE_integer("mask_render_side", D["mask_render_side"], "Render masks at most this large and up-sample (faster at 512; default: full size).")
flags.DEFINE_integer("checkpoint_every", D["checkpoint_every"], "Save a checkpoint every N steps.")
flags.DEFINE_integer("keep_checkpoints", D["keep_checkpoints"], "How many checkpoints to keep.")
flags.DEFINE_integer("log_every", D["log_every"], "Print progress and write TensorBoard scalars every N steps.")
flags.DEFINE_integer("image_every", D["image_every"], "Write TensorBoard image grids every N steps.")
flags.DEFINE_enum("strategy", D["strategy"], ["default", "mirrored", "multi_worker"], "tf.distribute strategy: one device, all local GPUs, or several machines (TF_CONFIG).")
flags.DEFINE_bool("mixed_precision", D["mixed_precision"], "mixed_float16 with loss scaling (for GPUs).")
flags.DEFINE_bool("jit_compile", D["jit_compile"], "Compile the train step with XLA.")
flags.DEFINE_integer("seed", D["seed"], "Seed of crops, masks and the interpolation weights.")
flags.DEFINE_string("init_generator", D["init_generator"], "Start the generator from another model_dir's latest checkpoint or a weights .npz (e.g. after a reconstruction-only warm-up).")
flags.DEFINE_string("validation_dir", D["validation_dir"], "Folder of held-out photos: every --validate_every steps the model (with CRA, at --image_size squared pixels) and OpenCV Telea are scored in seeded holes; the best generator by hole L1 is kept as MODEL_DIR/best.npz.")
flags.DEFINE_integer("validate_every", D["validate_every"], "Validate every N steps.")
flags.DEFINE_integer("validation_long_side", D["validation_long_side"], "Validation photos are resized to this long side (pixels).")
flags.DEFINE_integer("validation_holes", D["validation_holes"], "Seeded holes per validation photo.")
flags.DEFINE_integer("images_seen_before", D["images_seen_before"], "Images the initial generator was already trained on (continuing a run across sessions): added to the images-seen axis of the validation log.")
flags.DEFINE_enum("backend", D["backend"], ["tensorflow", "jax"], "Keras backend of training. tensorflow: tf.data, tf.distribute, checkpoints; jax: the same Algorithm 1 with views from hifill_tf.data.numpy_feed (no TensorFlow needed; --hole_pool required) and --mixed_precision as bfloat16.")
flags.DEFINE_float("train_minutes", D["train_minutes"], "Stop after this many minutes of training (then save, validate and exit 0); unset: run until --steps.")
flags.DEFINE_string("hole_pool", D["hole_pool"], "With --backend=jax: the .npz of training holes pre-rendered by `python -m hifill_tf.data.numpy_feed render-holes` (the same MaskGenerator as the TF pipeline).")
flags.DEFINE_integer("feed_workers", D["feed_workers"], "With --backend=jax: processes making views (default: all cores but one).")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    if bool(FLAGS.data_dir) == bool(FLAGS.dataset):
        sys.exit("train.py: give exactly one of --data_dir or --dataset")
    config = {name: FLAGS[name].value for name in D if name in FLAGS}
    config["data"] = FLAGS.data_dir or FLAGS.dataset
    config["model_dir"] = FLAGS.model_dir
    try:
        check_config(config)
    except TrainingError as error:
        sys.exit(f"train.py: {error}")

    # Keras reads its backend once, at import: set it before anything imports Keras.
    os.environ["KERAS_BACKEND"] = config["backend"]
    if config["backend"] == "jax":
        from hifill_tf.training import jax_trainer as trainer
    else:
        from hifill_tf.training import trainer

    try:
        result = trainer.train(config, progress=lambda message: print(message, flush=True))
    except (TrainingError, FileNotFoundError, ValueError) as error:
        sys.exit(f"train.py: {error}")
    if result.get("signal") is not None:
        sys.exit(128 + int(result["signal"]))


if __name__ == "__main__":
    app.run(main)
