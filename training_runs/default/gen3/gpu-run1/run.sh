# The command of a GPU run: two stages of tools/gpu_train.sh (reconstruction, then Algorithm 1)
# from the code snapshot .gpu/src, then the generator's forward times. Run 1 was called as
#   OUT=$OUT M1=3.5 M2=1.0 B1=32 B2=16 L=200 K=2000 T=45 SIZES=512,1024,2048 bash .gpu/run.sh
# (minutes, batch sizes, log and checkpoint/validation steps, seconds for the timings). Its
# timings printed nothing in 45 s; the bench's own output now goes to the log as well.
set -o pipefail; export PYTHONUNBUFFERED=1 GPU_DIR=$PWD/.gpu; S=${S:-256}; P=${P:-.gpu/holes-256.npz}
C="--image_size $S --hole_pool $GPU_DIR/${P#.gpu/} --hole_weight 6 --color_augment --images_seen_before 58096 --validation_holes 2 $X"
cd .gpu/src
bash tools/gpu_train.sh $OUT $M1 $C --batch_size $B1 --adversarial_weight 0 --g_lr 2e-4 --beta_1 0.9 --beta_2 0.999 --log_every $L --checkpoint_every $K --validate_every $K
bash tools/gpu_train.sh $OUT $M2 $C --batch_size $B2 --adversarial_weight 1e-4 --log_every $((L/5+1)) --checkpoint_every $((K/5)) --validate_every $((K/5))
PYTHONPATH=/tmp/hifill-site KERAS_BACKEND=jax timeout $T ${PYTHON:-python3} bench/jax_forward.py --sizes $SIZES --repeats 10 2>&1 | grep -v '^WARNING\|^I0000' | tee -a $OUT/train.log
ls -la $OUT
