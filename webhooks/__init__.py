"""The webhook service: verify a vendor's signature, store the delivery, acknowledge, trigger."""
