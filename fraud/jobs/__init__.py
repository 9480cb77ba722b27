"""The training pipeline's steps as plain functions; KFP components and the CLI are thin shells over them."""
