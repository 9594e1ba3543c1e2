"""What the dataset, feature and model stages share: another stage's config, manifests."""
