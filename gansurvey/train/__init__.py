"""GAN training: the one seeded training loop of teachers, fine-tuning, students and QAT (:mod:`.gan`), and the
published pix2pix/CycleGAN recipes on image folders (:mod:`.folder`)."""
