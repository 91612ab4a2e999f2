"""Fusion methods: how M label sets become one training signal."""
