#!/bin/bash
# Generation 2, stage d (session 4): Algorithm 1 fine-tune (WGAN-GP critic, beta = 1e-4, 5 critic
# updates per generator update) from stage c's best weights. Restarts on crash.
# /work/runs/gen2d_start.npz is stage c's best.npz; START_IMAGES its images seen (59296).
cd /work/runs/code
while true; do
  TF_ENABLE_ONEDNN_OPTS=1 /work/main/.venv/bin/python train.py --data_dir /work/data/photos/train \
    --validation_dir /work/data/photos/val \
    --model_dir /work/runs/gen2d --image_size 256 --batch_size 4 --steps 1000000 --log_every 10 \
    --checkpoint_every 50 --image_every 100 --validate_every 60 --adversarial_weight 1e-4 \
    --critic_steps 5 --color_augment --g_lr 1e-4 --d_lr 1e-4 --beta_1 0.5 --beta_2 0.9 --seed 17 \
    --hole_weight 6 --init_generator /work/runs/gen2d_start.npz --images_seen_before "$START_IMAGES" "$@"
  code=$?
  echo "train.py exited with $code at $(date)"
  if [ $code -eq 0 ] || [ $code -eq 143 ] || [ $code -eq 130 ] || [ -e /work/runs/STOP ]; then break; fi
  sleep 5
done
