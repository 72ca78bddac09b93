#!/bin/bash
# Generation 2, stage c (session 4): continue stage a from the bundled weights. Restarts on crash.
# /work/runs/gen2b_start.npz is a copy of hifill_tf/weights/hifill_default.npz (stage a's best).
cd /work/runs/code
while true; do
  TF_ENABLE_ONEDNN_OPTS=1 /work/main/.venv/bin/python train.py --data_dir /work/data/photos/train \
    --validation_dir /work/data/photos/val \
    --model_dir /work/runs/gen2c --image_size 256 --batch_size 4 --steps 1000000 --log_every 20 \
    --checkpoint_every 200 --image_every 400 --validate_every 300 --adversarial_weight 0 --color_augment \
    --g_lr 1e-4 --beta_1 0.9 --beta_2 0.999 --seed 13 --hole_weight 6 \
    --init_generator /work/runs/gen2b_start.npz --images_seen_before 58096 "$@"
  code=$?
  echo "train.py exited with $code at $(date)"
  if [ $code -eq 0 ] || [ $code -eq 143 ] || [ $code -eq 130 ] || [ -e /work/runs/STOP ]; then break; fi
  sleep 5
done
