"""The HiFill GAN: generator and WGAN-GP critic trained by Algorithm 1 (§3.5)."""

import keras
import tensorflow as tf

from hifill_tf.training import losses


@keras.saving.register_keras_serializable(package="hifill")
class HiFillGAN(keras.Model):
    """Generator plus critic with a custom ``train_step`` (Algorithm 1).

    Each element fed to ``fit``/``train_step`` is a dict ``{"image", "mask"}``
    of shape [B, critic_steps + 1, H, W, C]: slices 0..critic_steps-1 are the
    fresh batches (with fresh masks) of the critic updates, the last slice is
    the fresh batch of the generator update. The group axis is second so that
    ``tf.distribute`` splits the batch axis across replicas.

    Args:
        generator: a :class:`hifill_tf.Generator`.
        discriminator: a :class:`hifill_tf.Discriminator` (the critic).
        critic_steps: critic updates per generator update (5, Algorithm 1).
        gp_weight: gradient-penalty weight sigma of Eq. (9) (10, WGAN-GP).
        hole_weight, context_weight: alpha_1, alpha_2 of Eq. (13).
        adversarial_weight: beta of Eq. (14); 0 trains reconstruction only
            (no critic updates at all), used for a warm-up.
        coarse_weight: weight of the coarse output's reconstruction loss
            ("the coarse network is trained with the reconstruction loss").
        seed: seed of the interpolation weights.
    """

    def __init__(self, generator, discriminator, critic_steps=5, gp_weight=10.0,
                 hole_weight=1.0, context_weight=1.2, adversarial_weight=1e-4,
                 coarse_weight=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if critic_steps < 0:
            raise ValueError(f"critic_steps must be >= 0; got {critic_steps!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.critic_steps = critic_steps
        self.gp_weight = gp_weight
        self.hole_weight = hole_weight
        self.context_weight = context_weight
        self.adversarial_weight = adversarial_weight
        self.coarse_weight = coarse_weight
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        names = ["g_loss", "rec_loss", "coarse_rec_loss", "adv_loss", "d_loss",
                 "wasserstein", "gradient_penalty"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def uses_critic(self):
        return self.adversarial_weight > 0 and self.critic_steps > 0

    def compile(self, g_optimizer, d_optimizer=None, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        if self.uses_critic and d_optimizer is None:
            raise ValueError("a d_optimizer is needed when adversarial_weight > 0")

    def build_all(self, image_size):
        """Create every variable (networks and optimizer slots) so that a
        checkpoint can be restored before the first step."""
        self.generator.build()
        self.discriminator(tf.zeros([1, image_size, image_size, 3]))
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer is not None:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        return self.generator(inputs["image"], inputs["mask"], training=training)

    def _critic_step(self, image, mask, replica_scale):
        fake = self.generator(image, mask, training=True)["inpainted"]
        fake = tf.stop_gradient(fake)
        alpha = self.interpolation_alpha(tf.shape(image)[0])
        with tf.GradientTape() as tape:
            real_scores = self.discriminator(image, training=True)
            fake_scores = self.discriminator(fake, training=True)
            wasserstein = losses.critic_loss(real_scores, fake_scores)
            penalty = losses.gradient_penalty(self.discriminator, image, fake, alpha)
            d_loss = wasserstein + self.gp_weight * penalty
            # Optimizers sum gradients over replicas: scale to the global mean;
            # scale_loss is the identity unless the optimizer is a LossScaleOptimizer.
            scaled = self.d_optimizer.scale_loss(d_loss * replica_scale)
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.d_optimizer.apply(grads, variables)
        return d_loss, wasserstein, penalty

    def interpolation_alpha(self, batch):
        """alpha ~ U[0, 1] per sample (Algorithm 1), [batch, 1, 1, 1].

        The seed is folded with the replica id: under tf.distribute every replica holds the
        same seed state, and would otherwise draw the same alphas for its part of the batch.
        """
        seed = self.seed_generator.next()
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), replica)
        return tf.random.stateless_uniform((batch, 1, 1, 1), seed=seed)

    def train_step(self, data):
        images, masks = data["image"], data["mask"]
        replica_scale = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        if self.uses_critic:
            for step in range(self.critic_steps):
                d_loss, wasserstein, penalty = self._critic_step(
                    images[:, step], masks[:, step], replica_scale)
            self.trackers["d_loss"].update_state(d_loss)
            self.trackers["wasserstein"].update_state(wasserstein)
            self.trackers["gradient_penalty"].update_state(penalty)

        image, mask = images[:, -1], masks[:, -1]
        with tf.GradientTape() as tape:
            outputs = self.generator(image, mask, training=True)
            fake = outputs["inpainted"]  # the refined output pasted into the hole
            rec = losses.reconstruction_loss(outputs["refined"], image, mask,
                                             self.hole_weight, self.context_weight)
            coarse_rec = losses.reconstruction_loss(outputs["coarse"], image, mask,
                                                    self.hole_weight, self.context_weight)
            g_loss = rec + self.coarse_weight * coarse_rec  # Eq. (14) without the adversarial term
            if self.uses_critic:
                adv = losses.adversarial_loss(self.discriminator(fake, training=True))
                g_loss += self.adversarial_weight * adv
            else:
                adv = tf.zeros([])
            scaled = self.g_optimizer.scale_loss(g_loss * replica_scale)
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply(grads, variables)
        for name, value in (("g_loss", g_loss), ("rec_loss", rec),
                            ("coarse_rec_loss", coarse_rec), ("adv_loss", adv)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            critic_steps=self.critic_steps, gp_weight=self.gp_weight,
            hole_weight=self.hole_weight, context_weight=self.context_weight,
            adversarial_weight=self.adversarial_weight, coarse_weight=self.coarse_weight,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)
