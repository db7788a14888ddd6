"""Identity commands: create_user, add_member, rotate_signing_key, seed_demo."""
