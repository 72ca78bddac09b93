#!/bin/bash
# Generation 2, stage b: the stage-a generator (1,210 steps of batch 4 at lr 1e-4) with a fresh
# Adam at lr 3e-4. Restarts (resuming) if the process dies of anything but a clean stop.
cd /work/runs/code
while true; do
  TF_ENABLE_ONEDNN_OPTS=1 /work/main/.venv/bin/python train.py --data_dir /work/data/photos/train \
    --validation_dir /work/data/photos/val \
    --model_dir /work/runs/gen2b --image_size 256 --batch_size 4 --steps 1000000 --log_every 20 \
    --checkpoint_every 200 --image_every 400 --validate_every 300 --adversarial_weight 0 --color_augment \
    --g_lr 3e-4 --beta_1 0.9 --beta_2 0.999 --seed 12 --hole_weight 6 \
    --init_generator /work/runs/gen2 --images_seen_before 56936 "$@"
  code=$?
  echo "train.py exited with $code at $(date)"
  if [ $code -eq 0 ] || [ $code -eq 143 ] || [ $code -eq 130 ] || [ -e /work/runs/STOP ]; then break; fi
  sleep 5
done
