"""corral.resources"""
